-- A run store at schema version 7, written by agent-otel at commit 00e231c945027d0bd0789e0632737f21b2a4c1fd
-- (the last commit of main at that schema), generated once: git archive 00e231c945027d0bd0789e0632737f21b2a4c1fd src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v7; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','7');
INSERT INTO agent_otel_meta VALUES('summaries_from_ms','0');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796231417141');
INSERT INTO agent_otel_meta VALUES('snapshot_gc_cutoff','1795021817141:14');
CREATE TABLE agent_runs (
    run_id TEXT PRIMARY KEY,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT NOT NULL,
    parent_run_id TEXT,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    duration_ms REAL,
    tool_calls INTEGER,
    steps INTEGER,
    llm_calls INTEGER,
    retries INTEGER,
    stop_reason TEXT,
    status TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    model TEXT,
    prompt_version TEXT,
    tools_version TEXT,
    input_sha TEXT,
    service TEXT,
    replay_of TEXT,
    detail TEXT
, pid INTEGER, host TEXT, process_start TEXT, deadline_ms INTEGER, conversation_id TEXT);
INSERT INTO agent_runs VALUES('2de7c86ac9e94ffd89c63af3d4de5db0','53f13a499f2a096550393b8604c3225f','00c64ce40ea63f76','agent-v7',NULL,'2026-12-02 17:10:17.093','2026-12-02 17:10:17.105',12.862999999999999544,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','c00d958e0251c3e8166019ba','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('68c1e631a17646cdbcb1ac7147f44c98','1f70bf5296e7e1ce793d5e1874a26354','3c65bc1cdb5907d0','agent-v7',NULL,'2026-12-02 17:10:17.106','2026-12-02 17:10:17.106',0.58999999999999996891,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','af1106918eee85ea93d7d11e','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('fd4490c4edd4437b858d2eeb50233c51','cdf224ee21af0718fcce6d30ef6985cf','8660cdada071016b','agent-v7',NULL,'2026-12-02 17:10:17.107','2026-12-02 17:10:17.109',2.2170000000000000817,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','905717ed47ee59d68ccedfa8','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('91274ee5ec1b4f80b895726f9b445c0c','6520267a112c2fc1936939b9fe4731c8','7e7756fa0850a9b1','agent-v7',NULL,'2026-12-02 17:10:17.111','2026-12-02 17:10:17.111',0.66400000000000003463,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','2f4a49872fcdf22e79874747','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('89d622470da4450b8f869352f4154891','6520267a112c2fc1936939b9fe4731c8','1788cb05b8a9b05e','sub-v7','91274ee5ec1b4f80b895726f9b445c0c','2026-12-02 17:10:17.112','2026-12-02 17:10:17.112',0.18900000000000000133,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('f9f43df3cae545dd84147c580a6f8d2b','7ba4f963a5093e40115348dae8117d31','e302071ff650f805','agent-v7',NULL,'2026-12-02 17:10:17.112','2026-12-02 17:10:17.112',0.22500000000000000555,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','2c4d1e9c73bfac1e188fef06','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
INSERT INTO agent_runs VALUES('d5a67dc6070a418eb4765983e6256568','6a6e205d5af02fb306c83101ef60e3d4','affebb91e6e1290c','agent-v7',NULL,'2026-12-02 17:10:17.112','2026-12-02 17:10:17.116',4.6289999999999995594,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','3df9f16054285ecc26108f3d','up-v7',NULL,NULL,7647,'vm','eba62f28-5cc3-4dac-b2cf-498bd1815f4c:pid:[4026531836]:199937',NULL,NULL);
CREATE TABLE agent_events (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    step_id INTEGER,
    tool TEXT,
    args_sha TEXT,
    result_sha TEXT,
    duration_ms REAL,
    status TEXT,
    error TEXT,
    stop_reason TEXT,
    usage TEXT,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT,
    attempts INTEGER,
    args TEXT,
    result TEXT
);
INSERT INTO agent_events VALUES(1,'2de7c86ac9e94ffd89c63af3d4de5db0','tool_result',1796231417105,1,'lookup','96652fdb56fd3ccb8113d51b','099fb52b1826471c37556850',0.025999999999999998806,'ok',NULL,NULL,NULL,'53f13a499f2a096550393b8604c3225f','cb601b664a6dbe86','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'2de7c86ac9e94ffd89c63af3d4de5db0','tool_result',1796231417106,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.021000000000000001304,'ok',NULL,NULL,NULL,'53f13a499f2a096550393b8604c3225f','281db363c8d648f7','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'2de7c86ac9e94ffd89c63af3d4de5db0','llm_result',1796231417106,3,NULL,NULL,NULL,0.044999999999999998334,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','53f13a499f2a096550393b8604c3225f','4d7da6e1f257fdcb','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'2de7c86ac9e94ffd89c63af3d4de5db0','stop',1796231417106,NULL,NULL,NULL,NULL,12.862999999999999544,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 12.863}','53f13a499f2a096550393b8604c3225f','00c64ce40ea63f76','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'68c1e631a17646cdbcb1ac7147f44c98','tool_result',1796231417106,1,'lookup','c84ea86b59b36df28456c1af','d56934b120f8bf433ed98822',0.051999999999999997613,'ok',NULL,NULL,NULL,'1f70bf5296e7e1ce793d5e1874a26354','458b906bbf999635','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'68c1e631a17646cdbcb1ac7147f44c98','tool_result',1796231417107,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.010000000000000000208,'ok',NULL,NULL,NULL,'1f70bf5296e7e1ce793d5e1874a26354','64aba299cb5eada0','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'68c1e631a17646cdbcb1ac7147f44c98','llm_result',1796231417107,3,NULL,NULL,NULL,0.016000000000000000333,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','1f70bf5296e7e1ce793d5e1874a26354','ed5bc3eb46d16f0f','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'68c1e631a17646cdbcb1ac7147f44c98','stop',1796231417107,NULL,NULL,NULL,NULL,0.58999999999999996891,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.59}','1f70bf5296e7e1ce793d5e1874a26354','3c65bc1cdb5907d0','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'fd4490c4edd4437b858d2eeb50233c51','tool_result',1796231417107,1,'lookup','bb4fbbe1977c372310c6ee42','93d4c426567294c19f6efdca',0.010999999999999999361,'ok',NULL,NULL,NULL,'cdf224ee21af0718fcce6d30ef6985cf','cc21515e73d04bf1','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'fd4490c4edd4437b858d2eeb50233c51','tool_result',1796231417107,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.012000000000000000249,'ok',NULL,NULL,NULL,'cdf224ee21af0718fcce6d30ef6985cf','6d19dc5de4b7065e','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'fd4490c4edd4437b858d2eeb50233c51','llm_result',1796231417107,3,NULL,NULL,NULL,0.017999999999999998639,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','cdf224ee21af0718fcce6d30ef6985cf','5c7c1a3c7d8144d8','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'fd4490c4edd4437b858d2eeb50233c51','tool_result',1796231417108,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.038999999999999999944,'error','ValueError',NULL,NULL,'cdf224ee21af0718fcce6d30ef6985cf','aedf9b582c337e5b','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'fd4490c4edd4437b858d2eeb50233c51','stop',1796231417110,NULL,NULL,NULL,NULL,2.2170000000000000817,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 2.217}','cdf224ee21af0718fcce6d30ef6985cf','8660cdada071016b','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'91274ee5ec1b4f80b895726f9b445c0c','tool_result',1796231417111,1,'lookup','0556f41d5225a20ef5cd935f','586c271b5c6ddffb0790a87f',0.012999999999999999403,'ok',NULL,NULL,NULL,'6520267a112c2fc1936939b9fe4731c8','a3117611b10b7742','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'91274ee5ec1b4f80b895726f9b445c0c','tool_result',1796231417112,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.0070000000000000001457,'ok',NULL,NULL,NULL,'6520267a112c2fc1936939b9fe4731c8','cf228b41dd1fa87d','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'91274ee5ec1b4f80b895726f9b445c0c','llm_result',1796231417112,3,NULL,NULL,NULL,0.020000000000000000416,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','6520267a112c2fc1936939b9fe4731c8','09fb24b48a72b950','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'89d622470da4450b8f869352f4154891','tool_result',1796231417112,1,'lookup','adb3c60b6132729e0b3cb6fa','5bb09bfb19230978cee15180',0.0060000000000000001249,'ok',NULL,NULL,NULL,'6520267a112c2fc1936939b9fe4731c8','6d3718aa4636d3ea','sub-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'89d622470da4450b8f869352f4154891','stop',1796231417112,NULL,NULL,NULL,NULL,0.18900000000000000133,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.189}','6520267a112c2fc1936939b9fe4731c8','1788cb05b8a9b05e','sub-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'91274ee5ec1b4f80b895726f9b445c0c','stop',1796231417112,NULL,NULL,NULL,NULL,0.66400000000000003463,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.664}','6520267a112c2fc1936939b9fe4731c8','7e7756fa0850a9b1','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'f9f43df3cae545dd84147c580a6f8d2b','tool_result',1796231417112,1,'lookup','042e9c312164c4ca2d430c93','1b7baeab80a964c183b22c15',0.005000000000000000104,'ok',NULL,NULL,NULL,'7ba4f963a5093e40115348dae8117d31','a8b96b816fad1e13','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'f9f43df3cae545dd84147c580a6f8d2b','tool_result',1796231417112,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.0040000000000000000832,'ok',NULL,NULL,NULL,'7ba4f963a5093e40115348dae8117d31','be1bc3d304d0e874','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'f9f43df3cae545dd84147c580a6f8d2b','llm_result',1796231417112,3,NULL,NULL,NULL,0.010999999999999999361,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','7ba4f963a5093e40115348dae8117d31','bb09f088d108dbc7','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'f9f43df3cae545dd84147c580a6f8d2b','stop',1796231417112,NULL,NULL,NULL,NULL,0.22500000000000000555,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.225}','7ba4f963a5093e40115348dae8117d31','e302071ff650f805','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'d5a67dc6070a418eb4765983e6256568','tool_result',1796231417112,1,'lookup','553dc679b51bceed5bf3c593','d7df27a1cd9b9476a91c7549',0.0080000000000000001665,'ok',NULL,NULL,NULL,'6a6e205d5af02fb306c83101ef60e3d4','8328174007492a19','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'d5a67dc6070a418eb4765983e6256568','tool_result',1796231417112,2,'lookup','e0cdf2f1808bcd1d1ad92b09','8741aa433e87e5e435ea5b91',0.0040000000000000000832,'ok',NULL,NULL,NULL,'6a6e205d5af02fb306c83101ef60e3d4','bc20c9aca26ff206','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'d5a67dc6070a418eb4765983e6256568','llm_result',1796231417112,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','6a6e205d5af02fb306c83101ef60e3d4','43e9d15cfc1c32b4','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'d5a67dc6070a418eb4765983e6256568','tool_result',1796231417117,4,'fail','6612a97f9e90199e223f238c',NULL,3.4950000000000001065,'error','ValueError',NULL,NULL,'6a6e205d5af02fb306c83101ef60e3d4','61dbc59d6711026c','agent-v7',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'d5a67dc6070a418eb4765983e6256568','stop',1796231417117,NULL,NULL,NULL,NULL,4.6289999999999995594,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 4.629}','6a6e205d5af02fb306c83101ef60e3d4','affebb91e6e1290c','agent-v7',NULL,NULL,NULL);
CREATE TABLE agent_snapshot_runs (
    run_id TEXT PRIMARY KEY,
    parent_run_id TEXT,
    parent_step INTEGER,
    agent TEXT NOT NULL,
    model TEXT,
    prompt_version TEXT,
    tools_version TEXT,
    input_sha TEXT,
    created_at_ms INTEGER NOT NULL
, input_type TEXT, input_data_id INTEGER);
INSERT INTO agent_snapshot_runs VALUES('2de7c86ac9e94ffd89c63af3d4de5db0',NULL,NULL,'agent-v7','gpt-4o','p1','t1','c00d958e0251c3e8166019ba',1796231417093,NULL,1);
INSERT INTO agent_snapshot_runs VALUES('68c1e631a17646cdbcb1ac7147f44c98',NULL,NULL,'agent-v7','gpt-4o','p1','t1','af1106918eee85ea93d7d11e',1796231417106,NULL,4);
INSERT INTO agent_snapshot_runs VALUES('fd4490c4edd4437b858d2eeb50233c51',NULL,NULL,'agent-v7','gpt-4o','p1','t1','905717ed47ee59d68ccedfa8',1796231417107,NULL,7);
INSERT INTO agent_snapshot_runs VALUES('91274ee5ec1b4f80b895726f9b445c0c',NULL,NULL,'agent-v7','gpt-4o','p1','t1','2f4a49872fcdf22e79874747',1796231417111,NULL,11);
INSERT INTO agent_snapshot_runs VALUES('89d622470da4450b8f869352f4154891','91274ee5ec1b4f80b895726f9b445c0c',NULL,'sub-v7',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796231417112,NULL,14);
INSERT INTO agent_snapshot_runs VALUES('f9f43df3cae545dd84147c580a6f8d2b',NULL,NULL,'agent-v7','gpt-4o','p1','t1','2c4d1e9c73bfac1e188fef06',1796231417112,NULL,16);
INSERT INTO agent_snapshot_runs VALUES('d5a67dc6070a418eb4765983e6256568',NULL,NULL,'agent-v7','gpt-4o','p1','t1','3df9f16054285ecc26108f3d',1796231417112,NULL,19);
CREATE TABLE agent_tool_snapshots (
    run_id TEXT NOT NULL,
    step_id INTEGER NOT NULL,
    parent_step INTEGER,
    tool TEXT NOT NULL,
    args_sha TEXT NOT NULL,
    outcome TEXT NOT NULL,
    result_sha TEXT,
    blob_sha TEXT,
    error_type TEXT,
    result_type TEXT,
    created_at_ms INTEGER NOT NULL, data_id INTEGER,
    PRIMARY KEY (run_id, step_id)
);
INSERT INTO agent_tool_snapshots VALUES('2de7c86ac9e94ffd89c63af3d4de5db0',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','099fb52b1826471c37556850','099fb52b1826471c37556850',NULL,NULL,1796231417105,2);
INSERT INTO agent_tool_snapshots VALUES('2de7c86ac9e94ffd89c63af3d4de5db0',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417106,3);
INSERT INTO agent_tool_snapshots VALUES('68c1e631a17646cdbcb1ac7147f44c98',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','d56934b120f8bf433ed98822','d56934b120f8bf433ed98822',NULL,NULL,1796231417106,5);
INSERT INTO agent_tool_snapshots VALUES('68c1e631a17646cdbcb1ac7147f44c98',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417107,6);
INSERT INTO agent_tool_snapshots VALUES('fd4490c4edd4437b858d2eeb50233c51',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','93d4c426567294c19f6efdca','93d4c426567294c19f6efdca',NULL,NULL,1796231417107,8);
INSERT INTO agent_tool_snapshots VALUES('fd4490c4edd4437b858d2eeb50233c51',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417107,9);
INSERT INTO agent_tool_snapshots VALUES('fd4490c4edd4437b858d2eeb50233c51',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796231417109,10);
INSERT INTO agent_tool_snapshots VALUES('91274ee5ec1b4f80b895726f9b445c0c',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','586c271b5c6ddffb0790a87f','586c271b5c6ddffb0790a87f',NULL,NULL,1796231417111,12);
INSERT INTO agent_tool_snapshots VALUES('91274ee5ec1b4f80b895726f9b445c0c',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417112,13);
INSERT INTO agent_tool_snapshots VALUES('89d622470da4450b8f869352f4154891',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','5bb09bfb19230978cee15180','5bb09bfb19230978cee15180',NULL,NULL,1796231417112,15);
INSERT INTO agent_tool_snapshots VALUES('f9f43df3cae545dd84147c580a6f8d2b',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','1b7baeab80a964c183b22c15','1b7baeab80a964c183b22c15',NULL,NULL,1796231417112,17);
INSERT INTO agent_tool_snapshots VALUES('f9f43df3cae545dd84147c580a6f8d2b',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417112,18);
INSERT INTO agent_tool_snapshots VALUES('d5a67dc6070a418eb4765983e6256568',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','d7df27a1cd9b9476a91c7549','d7df27a1cd9b9476a91c7549',NULL,NULL,1796231417112,20);
INSERT INTO agent_tool_snapshots VALUES('d5a67dc6070a418eb4765983e6256568',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','8741aa433e87e5e435ea5b91','8741aa433e87e5e435ea5b91',NULL,NULL,1796231417112,21);
INSERT INTO agent_tool_snapshots VALUES('d5a67dc6070a418eb4765983e6256568',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796231417117,22);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
CREATE TABLE agent_run_summaries (
    span_ms INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    agent TEXT NOT NULL,
    runs INTEGER NOT NULL,
    events INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (span_ms, bucket_ms, agent)
) WITHOUT ROWID;
INSERT INTO agent_run_summaries VALUES(3600000,1796230800000,'agent-v7',6,26,'{"n":6,"tc":14.0,"usd":0.0021375,"rt":0.0,"stops":{"completed":[6,1796231417093]},"dur":{"p128":1,"p-26":1,"p40":1,"p-20":1,"p-74":1,"p77":1},"tch":{"2.0":4,"3.0":2},"usdh":{"p-397":3,"p-396":3},"req":6,"tok":675.0,"tokh":{"p236":3,"p237":2,"p238":1},"tools":{"lookup":12,"fail":2},"fail":{"fail\u0000ValueError":[2,1796231417108]},"ev":26}');
INSERT INTO agent_run_summaries VALUES(3600000,1796230800000,'sub-v7',1,2,'{"n":1,"tc":1.0,"usd":0.0,"rt":0.0,"stops":{"completed":[1,1796231417112]},"dur":{"p-83":1},"tch":{"1.0":1},"usdh":{"z":1},"req":0,"tok":0.0,"tokh":{},"tools":{"lookup":1},"fail":{},"ev":2}');
INSERT INTO agent_run_summaries VALUES(86400000,1796169600000,'agent-v7',6,26,'{"n":6,"tc":14.0,"usd":0.0021375,"rt":0.0,"stops":{"completed":[6,1796231417093]},"dur":{"p128":1,"p-26":1,"p40":1,"p-20":1,"p-74":1,"p77":1},"tch":{"2.0":4,"3.0":2},"usdh":{"p-397":3,"p-396":3},"req":6,"tok":675.0,"tokh":{"p236":3,"p237":2,"p238":1},"tools":{"lookup":12,"fail":2},"fail":{"fail\u0000ValueError":[2,1796231417108]},"ev":26}');
INSERT INTO agent_run_summaries VALUES(86400000,1796169600000,'sub-v7',1,2,'{"n":1,"tc":1.0,"usd":0.0,"rt":0.0,"stops":{"completed":[1,1796231417112]},"dur":{"p-83":1},"tch":{"1.0":1},"usdh":{"z":1},"req":0,"tok":0.0,"tokh":{},"tools":{"lookup":1},"fail":{},"ev":2}');
CREATE TABLE agent_snapshot_data (
    id INTEGER PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    data BLOB NOT NULL
);
INSERT INTO agent_snapshot_data VALUES(1,1796231417093,'',X'7b2269223a302c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(2,1796231417105,'',X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(3,1796231417106,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(4,1796231417106,'',X'7b2269223a312c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(5,1796231417106,'',X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(6,1796231417107,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(7,1796231417107,'',X'7b2269223a322c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(8,1796231417107,'',X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(9,1796231417107,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(10,1796231417109,'',X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d');
INSERT INTO agent_snapshot_data VALUES(11,1796231417111,'',X'7b2269223a332c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(12,1796231417111,'',X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(13,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(14,1796231417112,'',X'226368696c6422');
INSERT INTO agent_snapshot_data VALUES(15,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(16,1796231417112,'',X'7b2269223a342c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(17,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(18,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(19,1796231417112,'',X'7b2269223a352c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(20,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(21,1796231417112,'',X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227637227d');
INSERT INTO agent_snapshot_data VALUES(22,1796231417117,'',X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d');
CREATE INDEX agent_runs_created_at ON agent_runs (created_at);
CREATE INDEX agent_runs_agent_created_at ON agent_runs (agent, created_at);
CREATE INDEX agent_runs_parent ON agent_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX agent_events_run ON agent_events (run_id, step_id);
CREATE INDEX agent_events_ts ON agent_events (ts_ms);
CREATE INDEX agent_snapshot_runs_created ON agent_snapshot_runs (created_at_ms);
CREATE INDEX agent_snapshot_runs_parent ON agent_snapshot_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX agent_tool_snapshots_created ON agent_tool_snapshots (created_at_ms);
CREATE INDEX agent_snapshot_blobs_used ON agent_snapshot_blobs (last_used_ms);
CREATE INDEX agent_runs_running ON agent_runs (created_at) WHERE status = 'running';
CREATE INDEX agent_runs_conversation ON agent_runs (conversation_id, created_at) WHERE conversation_id IS NOT NULL;
CREATE INDEX agent_snapshot_data_created ON agent_snapshot_data (created_at_ms);
COMMIT;
