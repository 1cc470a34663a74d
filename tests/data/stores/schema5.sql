-- A run store at schema version 5, written by agent-otel at commit a850fda0f11588e0ab36ec4e009b43f538e960f6
-- (the last commit of main at that schema), generated once: git archive a850fda0f11588e0ab36ec4e009b43f538e960f6 src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v5; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','5');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079810311');
INSERT INTO agent_otel_meta VALUES('snapshot_gc_cutoff','1794870210311:14');
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
INSERT INTO agent_runs VALUES('bcbe190ac5dd45eb9c7a7aa665aefcb3','c09e895d4d522be4ab7ab67aa347532f','e09c55985fba5a66','agent-v5',NULL,'2026-11-30 23:03:30.257','2026-11-30 23:03:30.271',14.359999999999999431,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','ea1e3e9b7ce374e08e3d1216','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('d74e49b3e03842499380d8157940419f','d76215a9f24d84e22acfb7b154ee72dd','fef69af534e0862d','agent-v5',NULL,'2026-11-30 23:03:30.271','2026-11-30 23:03:30.271',0.31199999999999999955,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','31e0c9d5c807f4539a6ebac8','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('dc7493dcf0da40eb989fa62a1428a0f9','ac20539020b34ab4b018e46e201a0d3d','06ed6e1e1743424f','agent-v5',NULL,'2026-11-30 23:03:30.271','2026-11-30 23:03:30.284',13.510999999999999232,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','eefcef86a0ff5d187664a4e5','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('1c8039d993954e96812fead1f23bbea9','a85c49d6bc3b3f2b954043c1b55187c1','e25703f77c19b4a4','agent-v5',NULL,'2026-11-30 23:03:30.285','2026-11-30 23:03:30.285',0.64500000000000001776,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','074e235b5d016498dbc8ac7a','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('63cb9ca151cb4334b8ce0a9ffed40c4d','a85c49d6bc3b3f2b954043c1b55187c1','020541625db5ee26','sub-v5','1c8039d993954e96812fead1f23bbea9','2026-11-30 23:03:30.286','2026-11-30 23:03:30.286',0.16500000000000000777,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('9cd14ce331294313842190169861b505','d4a3e27bcf626af19d8a0887d15c6e71','3c2b563687cffd84','agent-v5',NULL,'2026-11-30 23:03:30.286','2026-11-30 23:03:30.286',0.39800000000000002042,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','a35415a47644b23b14b55d5a','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
INSERT INTO agent_runs VALUES('04aba3d0921b4a50a712d9b9a2f36e1b','9ecc6348e89114e214ee2185309f1c9d','c891ce94150e96c0','agent-v5',NULL,'2026-11-30 23:03:30.286','2026-11-30 23:03:30.286',0.8319999999999999618,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','118e71fbad53c4b0404e0fdb','up-v5',NULL,NULL,29395,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144848',NULL,NULL);
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
INSERT INTO agent_events VALUES(1,'bcbe190ac5dd45eb9c7a7aa665aefcb3','tool_result',1796079810271,1,'lookup','96652fdb56fd3ccb8113d51b','c58d971a15e44287f3a41c34',0.017000000000000001221,'ok',NULL,NULL,NULL,'c09e895d4d522be4ab7ab67aa347532f','74684f83a4131a40','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'bcbe190ac5dd45eb9c7a7aa665aefcb3','tool_result',1796079810271,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.010999999999999999361,'ok',NULL,NULL,NULL,'c09e895d4d522be4ab7ab67aa347532f','79e2af50ba4d4ec2','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'bcbe190ac5dd45eb9c7a7aa665aefcb3','llm_result',1796079810271,3,NULL,NULL,NULL,0.024000000000000000499,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','c09e895d4d522be4ab7ab67aa347532f','ba46428565e040c0','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'bcbe190ac5dd45eb9c7a7aa665aefcb3','stop',1796079810271,NULL,NULL,NULL,NULL,14.359999999999999431,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 14.36}','c09e895d4d522be4ab7ab67aa347532f','e09c55985fba5a66','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'d74e49b3e03842499380d8157940419f','tool_result',1796079810271,1,'lookup','c84ea86b59b36df28456c1af','30ddcb38bad0a3f153c36be5',0.0089999999999999993199,'ok',NULL,NULL,NULL,'d76215a9f24d84e22acfb7b154ee72dd','31a040e73e66c2de','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'d74e49b3e03842499380d8157940419f','tool_result',1796079810271,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.0060000000000000001249,'ok',NULL,NULL,NULL,'d76215a9f24d84e22acfb7b154ee72dd','b4662fe455a25f30','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'d74e49b3e03842499380d8157940419f','llm_result',1796079810271,3,NULL,NULL,NULL,0.010000000000000000208,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','d76215a9f24d84e22acfb7b154ee72dd','2f067014d3ffe38a','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'d74e49b3e03842499380d8157940419f','stop',1796079810271,NULL,NULL,NULL,NULL,0.31199999999999999955,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.312}','d76215a9f24d84e22acfb7b154ee72dd','fef69af534e0862d','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'dc7493dcf0da40eb989fa62a1428a0f9','tool_result',1796079810272,1,'lookup','bb4fbbe1977c372310c6ee42','35c77840b525111e4cb601ef',0.0070000000000000001457,'ok',NULL,NULL,NULL,'ac20539020b34ab4b018e46e201a0d3d','15e6d6138cb7c2eb','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'dc7493dcf0da40eb989fa62a1428a0f9','tool_result',1796079810272,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.0070000000000000001457,'ok',NULL,NULL,NULL,'ac20539020b34ab4b018e46e201a0d3d','1244e82fd477c120','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'dc7493dcf0da40eb989fa62a1428a0f9','llm_result',1796079810272,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','ac20539020b34ab4b018e46e201a0d3d','e5791cff33a7ff7e','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'dc7493dcf0da40eb989fa62a1428a0f9','tool_result',1796079810285,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.012000000000000000249,'error','ValueError',NULL,NULL,'ac20539020b34ab4b018e46e201a0d3d','64aa54034ff15e75','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'dc7493dcf0da40eb989fa62a1428a0f9','stop',1796079810285,NULL,NULL,NULL,NULL,13.510999999999999232,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 13.511}','ac20539020b34ab4b018e46e201a0d3d','06ed6e1e1743424f','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'1c8039d993954e96812fead1f23bbea9','tool_result',1796079810285,1,'lookup','0556f41d5225a20ef5cd935f','6359a72fcf2ddb50a072b6d2',0.016000000000000000333,'ok',NULL,NULL,NULL,'a85c49d6bc3b3f2b954043c1b55187c1','71739e11736592ff','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'1c8039d993954e96812fead1f23bbea9','tool_result',1796079810285,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.0070000000000000001457,'ok',NULL,NULL,NULL,'a85c49d6bc3b3f2b954043c1b55187c1','4cecd858a93bd868','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'1c8039d993954e96812fead1f23bbea9','llm_result',1796079810285,3,NULL,NULL,NULL,0.018999999999999999528,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','a85c49d6bc3b3f2b954043c1b55187c1','3cc0cbc19b63086f','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'63cb9ca151cb4334b8ce0a9ffed40c4d','tool_result',1796079810286,1,'lookup','adb3c60b6132729e0b3cb6fa','f451f88c676f02c7a685b5df',0.0060000000000000001249,'ok',NULL,NULL,NULL,'a85c49d6bc3b3f2b954043c1b55187c1','c1b47f6745ffe640','sub-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'63cb9ca151cb4334b8ce0a9ffed40c4d','stop',1796079810286,NULL,NULL,NULL,NULL,0.16500000000000000777,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.165}','a85c49d6bc3b3f2b954043c1b55187c1','020541625db5ee26','sub-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'1c8039d993954e96812fead1f23bbea9','stop',1796079810286,NULL,NULL,NULL,NULL,0.64500000000000001776,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.645}','a85c49d6bc3b3f2b954043c1b55187c1','e25703f77c19b4a4','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'9cd14ce331294313842190169861b505','tool_result',1796079810286,1,'lookup','042e9c312164c4ca2d430c93','aef74f9970fad7c37fdcafb9',0.0070000000000000001457,'ok',NULL,NULL,NULL,'d4a3e27bcf626af19d8a0887d15c6e71','9284bfaf373932fa','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'9cd14ce331294313842190169861b505','tool_result',1796079810286,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.0040000000000000000832,'ok',NULL,NULL,NULL,'d4a3e27bcf626af19d8a0887d15c6e71','4d3055ccabb43bd7','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'9cd14ce331294313842190169861b505','llm_result',1796079810286,3,NULL,NULL,NULL,0.014000000000000000291,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','d4a3e27bcf626af19d8a0887d15c6e71','fea926f474a82d0a','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'9cd14ce331294313842190169861b505','stop',1796079810286,NULL,NULL,NULL,NULL,0.39800000000000002042,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.398}','d4a3e27bcf626af19d8a0887d15c6e71','3c2b563687cffd84','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'04aba3d0921b4a50a712d9b9a2f36e1b','tool_result',1796079810286,1,'lookup','553dc679b51bceed5bf3c593','11c39614440900ec846258e1',0.0089999999999999993199,'ok',NULL,NULL,NULL,'9ecc6348e89114e214ee2185309f1c9d','34a569d42d615c70','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'04aba3d0921b4a50a712d9b9a2f36e1b','tool_result',1796079810286,2,'lookup','e0cdf2f1808bcd1d1ad92b09','ddc1701fb3d72643ad87ca9f',0.005000000000000000104,'ok',NULL,NULL,NULL,'9ecc6348e89114e214ee2185309f1c9d','ccd1ac252b2c0884','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'04aba3d0921b4a50a712d9b9a2f36e1b','llm_result',1796079810286,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','9ecc6348e89114e214ee2185309f1c9d','f43c368411d410a6','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'04aba3d0921b4a50a712d9b9a2f36e1b','tool_result',1796079810287,4,'fail','6612a97f9e90199e223f238c',NULL,0.010999999999999999361,'error','ValueError',NULL,NULL,'9ecc6348e89114e214ee2185309f1c9d','700df7dd56409880','agent-v5',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'04aba3d0921b4a50a712d9b9a2f36e1b','stop',1796079810287,NULL,NULL,NULL,NULL,0.8319999999999999618,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.832}','9ecc6348e89114e214ee2185309f1c9d','c891ce94150e96c0','agent-v5',NULL,NULL,NULL);
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
, input_type TEXT);
INSERT INTO agent_snapshot_runs VALUES('bcbe190ac5dd45eb9c7a7aa665aefcb3',NULL,NULL,'agent-v5','gpt-4o','p1','t1','ea1e3e9b7ce374e08e3d1216',1796079810257,NULL);
INSERT INTO agent_snapshot_runs VALUES('d74e49b3e03842499380d8157940419f',NULL,NULL,'agent-v5','gpt-4o','p1','t1','31e0c9d5c807f4539a6ebac8',1796079810271,NULL);
INSERT INTO agent_snapshot_runs VALUES('dc7493dcf0da40eb989fa62a1428a0f9',NULL,NULL,'agent-v5','gpt-4o','p1','t1','eefcef86a0ff5d187664a4e5',1796079810271,NULL);
INSERT INTO agent_snapshot_runs VALUES('1c8039d993954e96812fead1f23bbea9',NULL,NULL,'agent-v5','gpt-4o','p1','t1','074e235b5d016498dbc8ac7a',1796079810285,NULL);
INSERT INTO agent_snapshot_runs VALUES('63cb9ca151cb4334b8ce0a9ffed40c4d','1c8039d993954e96812fead1f23bbea9',NULL,'sub-v5',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796079810286,NULL);
INSERT INTO agent_snapshot_runs VALUES('9cd14ce331294313842190169861b505',NULL,NULL,'agent-v5','gpt-4o','p1','t1','a35415a47644b23b14b55d5a',1796079810286,NULL);
INSERT INTO agent_snapshot_runs VALUES('04aba3d0921b4a50a712d9b9a2f36e1b',NULL,NULL,'agent-v5','gpt-4o','p1','t1','118e71fbad53c4b0404e0fdb',1796079810286,NULL);
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
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
INSERT INTO agent_tool_snapshots VALUES('bcbe190ac5dd45eb9c7a7aa665aefcb3',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','c58d971a15e44287f3a41c34','c58d971a15e44287f3a41c34',NULL,NULL,1796079810271);
INSERT INTO agent_tool_snapshots VALUES('bcbe190ac5dd45eb9c7a7aa665aefcb3',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810271);
INSERT INTO agent_tool_snapshots VALUES('d74e49b3e03842499380d8157940419f',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','30ddcb38bad0a3f153c36be5','30ddcb38bad0a3f153c36be5',NULL,NULL,1796079810271);
INSERT INTO agent_tool_snapshots VALUES('d74e49b3e03842499380d8157940419f',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810271);
INSERT INTO agent_tool_snapshots VALUES('dc7493dcf0da40eb989fa62a1428a0f9',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','35c77840b525111e4cb601ef','35c77840b525111e4cb601ef',NULL,NULL,1796079810272);
INSERT INTO agent_tool_snapshots VALUES('dc7493dcf0da40eb989fa62a1428a0f9',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810272);
INSERT INTO agent_tool_snapshots VALUES('dc7493dcf0da40eb989fa62a1428a0f9',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796079810285);
INSERT INTO agent_tool_snapshots VALUES('1c8039d993954e96812fead1f23bbea9',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','6359a72fcf2ddb50a072b6d2','6359a72fcf2ddb50a072b6d2',NULL,NULL,1796079810285);
INSERT INTO agent_tool_snapshots VALUES('1c8039d993954e96812fead1f23bbea9',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810285);
INSERT INTO agent_tool_snapshots VALUES('63cb9ca151cb4334b8ce0a9ffed40c4d',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','f451f88c676f02c7a685b5df','f451f88c676f02c7a685b5df',NULL,NULL,1796079810286);
INSERT INTO agent_tool_snapshots VALUES('9cd14ce331294313842190169861b505',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','aef74f9970fad7c37fdcafb9','aef74f9970fad7c37fdcafb9',NULL,NULL,1796079810286);
INSERT INTO agent_tool_snapshots VALUES('9cd14ce331294313842190169861b505',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810286);
INSERT INTO agent_tool_snapshots VALUES('04aba3d0921b4a50a712d9b9a2f36e1b',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','11c39614440900ec846258e1','11c39614440900ec846258e1',NULL,NULL,1796079810286);
INSERT INTO agent_tool_snapshots VALUES('04aba3d0921b4a50a712d9b9a2f36e1b',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','ddc1701fb3d72643ad87ca9f','ddc1701fb3d72643ad87ca9f',NULL,NULL,1796079810286);
INSERT INTO agent_tool_snapshots VALUES('04aba3d0921b4a50a712d9b9a2f36e1b',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796079810287);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
INSERT INTO agent_snapshot_blobs VALUES('ea1e3e9b7ce374e08e3d1216','json','',18,X'7b2269223a302c22746167223a227635227d',1796079810311);
INSERT INTO agent_snapshot_blobs VALUES('c58d971a15e44287f3a41c34','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('ddc1701fb3d72643ad87ca9f','json','',38,X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('31e0c9d5c807f4539a6ebac8','json','',18,X'7b2269223a312c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('30ddcb38bad0a3f153c36be5','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('eefcef86a0ff5d187664a4e5','json','',18,X'7b2269223a322c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('35c77840b525111e4cb601ef','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('f48888df3c12375571593ad6','json','',87,X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('074e235b5d016498dbc8ac7a','json','',18,X'7b2269223a332c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('6359a72fcf2ddb50a072b6d2','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('0afbc7c3c11c0f7d165fc380','json','',7,X'226368696c6422',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('f451f88c676f02c7a685b5df','json','',39,X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('a35415a47644b23b14b55d5a','json','',18,X'7b2269223a342c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('aef74f9970fad7c37fdcafb9','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('118e71fbad53c4b0404e0fdb','json','',18,X'7b2269223a352c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('11c39614440900ec846258e1','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227635227d',1796079810312);
INSERT INTO agent_snapshot_blobs VALUES('9af957097d9f0a9a6860148d','json','',87,X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079810312);
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
COMMIT;
