-- A run store at schema version 6, written by agent-otel at commit 23f83913194b6253fe35e30eeea7c325c1c1df91
-- (the last commit of main at that schema), generated once: git archive 23f83913194b6253fe35e30eeea7c325c1c1df91 src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v6; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','6');
INSERT INTO agent_otel_meta VALUES('summaries_from_ms','0');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079814579');
INSERT INTO agent_otel_meta VALUES('snapshot_gc_cutoff','1794870214579:14');
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
INSERT INTO agent_runs VALUES('694db4f288944181aae4b5a47e6eab10','756ab72f872afb6b4decab45733e82e1','f08302465f22f901','agent-v6',NULL,'2026-11-30 23:03:34.475','2026-11-30 23:03:34.511',36.451000000000000512,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','a1795ac1c7fa38f535e78f55','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('39c269c457c544f289d0864ebe53b251','bd45fc692070102bd0c64dddaba92bcb','d1d1730307dd401e','agent-v6',NULL,'2026-11-30 23:03:34.512','2026-11-30 23:03:34.512',0.35499999999999998223,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','fdbab6697bf49f79e29695c0','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('ac02719a93164dd7a6212c5536733e7f','5031c8bd8db847c95f47b98ace5898e8','55cfe2f2c59f0a7f','agent-v6',NULL,'2026-11-30 23:03:34.513','2026-11-30 23:03:34.514',1.2150000000000000799,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','da1a273e2e2a210c69d70728','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('c7c3c4e2ddfe4418b05120112584e340','1397cb9223ba89aa2838cb298032302c','170da138797ed213','agent-v6',NULL,'2026-11-30 23:03:34.514','2026-11-30 23:03:34.514',0.49899999999999999911,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','dda8758cd01b30de8174e07a','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('523513428e2d4949a2ab6258e73b84c1','1397cb9223ba89aa2838cb298032302c','8044c656444fe566','sub-v6','c7c3c4e2ddfe4418b05120112584e340','2026-11-30 23:03:34.514','2026-11-30 23:03:34.514',0.14299999999999998823,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('d93d10c8a5d14405af31d55da8c78c06','42ab267c8ebf5b819fd00ee01209c1e1','d557ce84b35147a4','agent-v6',NULL,'2026-11-30 23:03:34.514','2026-11-30 23:03:34.514',0.20599999999999998867,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','d143e543847750e8afb39f87','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
INSERT INTO agent_runs VALUES('973ea67222f54dfe895fd3682a7b5267','ea8da12fb1022b1b10ac799de66de82f','f478a1014e0e97fd','agent-v6',NULL,'2026-11-30 23:03:34.515','2026-11-30 23:03:34.515',0.81000000000000005329,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','a1d896df4587745b3389b305','up-v6',NULL,NULL,29599,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6145133',NULL,NULL);
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
INSERT INTO agent_events VALUES(1,'694db4f288944181aae4b5a47e6eab10','tool_result',1796079814512,1,'lookup','96652fdb56fd3ccb8113d51b','66f2069a903f075ce64c8b9d',0.017999999999999998639,'ok',NULL,NULL,NULL,'756ab72f872afb6b4decab45733e82e1','82d069080af3d7e7','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'694db4f288944181aae4b5a47e6eab10','tool_result',1796079814512,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.012999999999999999403,'ok',NULL,NULL,NULL,'756ab72f872afb6b4decab45733e82e1','95f610ac41cf813c','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'694db4f288944181aae4b5a47e6eab10','llm_result',1796079814512,3,NULL,NULL,NULL,0.025999999999999998806,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','756ab72f872afb6b4decab45733e82e1','42df65c379d953dd','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'694db4f288944181aae4b5a47e6eab10','stop',1796079814512,NULL,NULL,NULL,NULL,36.451000000000000512,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 36.451}','756ab72f872afb6b4decab45733e82e1','f08302465f22f901','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'39c269c457c544f289d0864ebe53b251','tool_result',1796079814512,1,'lookup','c84ea86b59b36df28456c1af','2612f8f76555fdb5fc69ac87',0.010000000000000000208,'ok',NULL,NULL,NULL,'bd45fc692070102bd0c64dddaba92bcb','e7cf5ba899ffe3d8','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'39c269c457c544f289d0864ebe53b251','tool_result',1796079814512,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.0060000000000000001249,'ok',NULL,NULL,NULL,'bd45fc692070102bd0c64dddaba92bcb','fbfff0105d01dd5e','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'39c269c457c544f289d0864ebe53b251','llm_result',1796079814512,3,NULL,NULL,NULL,0.014000000000000000291,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','bd45fc692070102bd0c64dddaba92bcb','34bb85efcb7fda3e','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'39c269c457c544f289d0864ebe53b251','stop',1796079814512,NULL,NULL,NULL,NULL,0.35499999999999998223,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.355}','bd45fc692070102bd0c64dddaba92bcb','d1d1730307dd401e','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'ac02719a93164dd7a6212c5536733e7f','tool_result',1796079814513,1,'lookup','bb4fbbe1977c372310c6ee42','be17bd7ce66c2a65d2a81adb',0.0070000000000000001457,'ok',NULL,NULL,NULL,'5031c8bd8db847c95f47b98ace5898e8','4c3ce14f0a47a6fa','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'ac02719a93164dd7a6212c5536733e7f','tool_result',1796079814513,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.0070000000000000001457,'ok',NULL,NULL,NULL,'5031c8bd8db847c95f47b98ace5898e8','b1148c43892505ea','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'ac02719a93164dd7a6212c5536733e7f','llm_result',1796079814513,3,NULL,NULL,NULL,0.010999999999999999361,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','5031c8bd8db847c95f47b98ace5898e8','b3f37aaf82b9f136','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'ac02719a93164dd7a6212c5536733e7f','tool_result',1796079814514,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.012999999999999999403,'error','ValueError',NULL,NULL,'5031c8bd8db847c95f47b98ace5898e8','11d979a3d29ece29','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'ac02719a93164dd7a6212c5536733e7f','stop',1796079814514,NULL,NULL,NULL,NULL,1.2150000000000000799,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 1.215}','5031c8bd8db847c95f47b98ace5898e8','55cfe2f2c59f0a7f','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'c7c3c4e2ddfe4418b05120112584e340','tool_result',1796079814514,1,'lookup','0556f41d5225a20ef5cd935f','fa47eba29cfa3e54964e10ba',0.010000000000000000208,'ok',NULL,NULL,NULL,'1397cb9223ba89aa2838cb298032302c','0fc7d82f34fc7998','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'c7c3c4e2ddfe4418b05120112584e340','tool_result',1796079814514,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.0060000000000000001249,'ok',NULL,NULL,NULL,'1397cb9223ba89aa2838cb298032302c','bbf0fa7bfe68ae2e','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'c7c3c4e2ddfe4418b05120112584e340','llm_result',1796079814514,3,NULL,NULL,NULL,0.012999999999999999403,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','1397cb9223ba89aa2838cb298032302c','c967c6289768b16a','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'523513428e2d4949a2ab6258e73b84c1','tool_result',1796079814514,1,'lookup','adb3c60b6132729e0b3cb6fa','db5fbb446988780441edaf26',0.005000000000000000104,'ok',NULL,NULL,NULL,'1397cb9223ba89aa2838cb298032302c','db215a999b113cb6','sub-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'523513428e2d4949a2ab6258e73b84c1','stop',1796079814514,NULL,NULL,NULL,NULL,0.14299999999999998823,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.143}','1397cb9223ba89aa2838cb298032302c','8044c656444fe566','sub-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'c7c3c4e2ddfe4418b05120112584e340','stop',1796079814514,NULL,NULL,NULL,NULL,0.49899999999999999911,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.499}','1397cb9223ba89aa2838cb298032302c','170da138797ed213','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'d93d10c8a5d14405af31d55da8c78c06','tool_result',1796079814514,1,'lookup','042e9c312164c4ca2d430c93','158a4852a607ee9a19d7f1db',0.0040000000000000000832,'ok',NULL,NULL,NULL,'42ab267c8ebf5b819fd00ee01209c1e1','2da65bbf7d07d998','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'d93d10c8a5d14405af31d55da8c78c06','tool_result',1796079814515,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.0040000000000000000832,'ok',NULL,NULL,NULL,'42ab267c8ebf5b819fd00ee01209c1e1','2591f943b76f72c4','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'d93d10c8a5d14405af31d55da8c78c06','llm_result',1796079814515,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','42ab267c8ebf5b819fd00ee01209c1e1','18fbf9775aa49ef5','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'d93d10c8a5d14405af31d55da8c78c06','stop',1796079814515,NULL,NULL,NULL,NULL,0.20599999999999998867,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.206}','42ab267c8ebf5b819fd00ee01209c1e1','d557ce84b35147a4','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'973ea67222f54dfe895fd3682a7b5267','tool_result',1796079814515,1,'lookup','553dc679b51bceed5bf3c593','a0064a408a0ecec5ee28906f',0.0040000000000000000832,'ok',NULL,NULL,NULL,'ea8da12fb1022b1b10ac799de66de82f','32b3f2f76270bb04','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'973ea67222f54dfe895fd3682a7b5267','tool_result',1796079814515,2,'lookup','e0cdf2f1808bcd1d1ad92b09','11aa1c3b489a32d15108011a',0.0030000000000000000624,'ok',NULL,NULL,NULL,'ea8da12fb1022b1b10ac799de66de82f','ff7213313527400e','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'973ea67222f54dfe895fd3682a7b5267','llm_result',1796079814515,3,NULL,NULL,NULL,0.010999999999999999361,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','ea8da12fb1022b1b10ac799de66de82f','dd6f1b9e1ecf0373','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'973ea67222f54dfe895fd3682a7b5267','tool_result',1796079814515,4,'fail','6612a97f9e90199e223f238c',NULL,0.010000000000000000208,'error','ValueError',NULL,NULL,'ea8da12fb1022b1b10ac799de66de82f','8eb4e95d1d144f4c','agent-v6',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'973ea67222f54dfe895fd3682a7b5267','stop',1796079814515,NULL,NULL,NULL,NULL,0.81000000000000005329,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.81}','ea8da12fb1022b1b10ac799de66de82f','f478a1014e0e97fd','agent-v6',NULL,NULL,NULL);
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
INSERT INTO agent_snapshot_runs VALUES('694db4f288944181aae4b5a47e6eab10',NULL,NULL,'agent-v6','gpt-4o','p1','t1','a1795ac1c7fa38f535e78f55',1796079814475,NULL);
INSERT INTO agent_snapshot_runs VALUES('39c269c457c544f289d0864ebe53b251',NULL,NULL,'agent-v6','gpt-4o','p1','t1','fdbab6697bf49f79e29695c0',1796079814512,NULL);
INSERT INTO agent_snapshot_runs VALUES('ac02719a93164dd7a6212c5536733e7f',NULL,NULL,'agent-v6','gpt-4o','p1','t1','da1a273e2e2a210c69d70728',1796079814513,NULL);
INSERT INTO agent_snapshot_runs VALUES('c7c3c4e2ddfe4418b05120112584e340',NULL,NULL,'agent-v6','gpt-4o','p1','t1','dda8758cd01b30de8174e07a',1796079814514,NULL);
INSERT INTO agent_snapshot_runs VALUES('523513428e2d4949a2ab6258e73b84c1','c7c3c4e2ddfe4418b05120112584e340',NULL,'sub-v6',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796079814514,NULL);
INSERT INTO agent_snapshot_runs VALUES('d93d10c8a5d14405af31d55da8c78c06',NULL,NULL,'agent-v6','gpt-4o','p1','t1','d143e543847750e8afb39f87',1796079814514,NULL);
INSERT INTO agent_snapshot_runs VALUES('973ea67222f54dfe895fd3682a7b5267',NULL,NULL,'agent-v6','gpt-4o','p1','t1','a1d896df4587745b3389b305',1796079814515,NULL);
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
INSERT INTO agent_tool_snapshots VALUES('694db4f288944181aae4b5a47e6eab10',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','66f2069a903f075ce64c8b9d','66f2069a903f075ce64c8b9d',NULL,NULL,1796079814512);
INSERT INTO agent_tool_snapshots VALUES('694db4f288944181aae4b5a47e6eab10',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814512);
INSERT INTO agent_tool_snapshots VALUES('39c269c457c544f289d0864ebe53b251',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','2612f8f76555fdb5fc69ac87','2612f8f76555fdb5fc69ac87',NULL,NULL,1796079814512);
INSERT INTO agent_tool_snapshots VALUES('39c269c457c544f289d0864ebe53b251',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814512);
INSERT INTO agent_tool_snapshots VALUES('ac02719a93164dd7a6212c5536733e7f',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','be17bd7ce66c2a65d2a81adb','be17bd7ce66c2a65d2a81adb',NULL,NULL,1796079814513);
INSERT INTO agent_tool_snapshots VALUES('ac02719a93164dd7a6212c5536733e7f',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814513);
INSERT INTO agent_tool_snapshots VALUES('ac02719a93164dd7a6212c5536733e7f',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796079814514);
INSERT INTO agent_tool_snapshots VALUES('c7c3c4e2ddfe4418b05120112584e340',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','fa47eba29cfa3e54964e10ba','fa47eba29cfa3e54964e10ba',NULL,NULL,1796079814514);
INSERT INTO agent_tool_snapshots VALUES('c7c3c4e2ddfe4418b05120112584e340',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814514);
INSERT INTO agent_tool_snapshots VALUES('523513428e2d4949a2ab6258e73b84c1',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','db5fbb446988780441edaf26','db5fbb446988780441edaf26',NULL,NULL,1796079814514);
INSERT INTO agent_tool_snapshots VALUES('d93d10c8a5d14405af31d55da8c78c06',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','158a4852a607ee9a19d7f1db','158a4852a607ee9a19d7f1db',NULL,NULL,1796079814514);
INSERT INTO agent_tool_snapshots VALUES('d93d10c8a5d14405af31d55da8c78c06',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814515);
INSERT INTO agent_tool_snapshots VALUES('973ea67222f54dfe895fd3682a7b5267',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','a0064a408a0ecec5ee28906f','a0064a408a0ecec5ee28906f',NULL,NULL,1796079814515);
INSERT INTO agent_tool_snapshots VALUES('973ea67222f54dfe895fd3682a7b5267',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','11aa1c3b489a32d15108011a','11aa1c3b489a32d15108011a',NULL,NULL,1796079814515);
INSERT INTO agent_tool_snapshots VALUES('973ea67222f54dfe895fd3682a7b5267',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796079814515);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
INSERT INTO agent_snapshot_blobs VALUES('a1795ac1c7fa38f535e78f55','json','',18,X'7b2269223a302c22746167223a227636227d',1796079814578);
INSERT INTO agent_snapshot_blobs VALUES('0afbc7c3c11c0f7d165fc380','json','',7,X'226368696c6422',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('11aa1c3b489a32d15108011a','json','',38,X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('158a4852a607ee9a19d7f1db','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('2612f8f76555fdb5fc69ac87','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('66f2069a903f075ce64c8b9d','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('9af957097d9f0a9a6860148d','json','',87,X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('a0064a408a0ecec5ee28906f','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('a1d896df4587745b3389b305','json','',18,X'7b2269223a352c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('be17bd7ce66c2a65d2a81adb','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('d143e543847750e8afb39f87','json','',18,X'7b2269223a342c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('da1a273e2e2a210c69d70728','json','',18,X'7b2269223a322c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('db5fbb446988780441edaf26','json','',39,X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('dda8758cd01b30de8174e07a','json','',18,X'7b2269223a332c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('f48888df3c12375571593ad6','json','',87,X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('fa47eba29cfa3e54964e10ba','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227636227d',1796079814579);
INSERT INTO agent_snapshot_blobs VALUES('fdbab6697bf49f79e29695c0','json','',18,X'7b2269223a312c22746167223a227636227d',1796079814579);
CREATE TABLE agent_run_summaries (
    span_ms INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    agent TEXT NOT NULL,
    runs INTEGER NOT NULL,
    events INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (span_ms, bucket_ms, agent)
) WITHOUT ROWID;
INSERT INTO agent_run_summaries VALUES(3600000,1796079600000,'agent-v6',6,26,'{"n":6,"tc":14.0,"usd":0.0021375,"rt":0.0,"stops":{"completed":[6,1796079814475]},"dur":{"p180":1,"p-51":1,"p10":1,"p-34":1,"p-78":1,"p-10":1},"tch":{"2.0":4,"3.0":2},"usdh":{"p-397":3,"p-396":3},"req":6,"tok":675.0,"tokh":{"p236":3,"p237":2,"p238":1},"tools":{"lookup":12,"fail":2},"fail":{"fail\u0000ValueError":[2,1796079814514]},"ev":26}');
INSERT INTO agent_run_summaries VALUES(3600000,1796079600000,'sub-v6',1,2,'{"n":1,"tc":1.0,"usd":0.0,"rt":0.0,"stops":{"completed":[1,1796079814514]},"dur":{"p-97":1},"tch":{"1.0":1},"usdh":{"z":1},"req":0,"tok":0.0,"tokh":{},"tools":{"lookup":1},"fail":{},"ev":2}');
INSERT INTO agent_run_summaries VALUES(86400000,1795996800000,'agent-v6',6,26,'{"n":6,"tc":14.0,"usd":0.0021375,"rt":0.0,"stops":{"completed":[6,1796079814475]},"dur":{"p180":1,"p-51":1,"p10":1,"p-34":1,"p-78":1,"p-10":1},"tch":{"2.0":4,"3.0":2},"usdh":{"p-397":3,"p-396":3},"req":6,"tok":675.0,"tokh":{"p236":3,"p237":2,"p238":1},"tools":{"lookup":12,"fail":2},"fail":{"fail\u0000ValueError":[2,1796079814514]},"ev":26}');
INSERT INTO agent_run_summaries VALUES(86400000,1795996800000,'sub-v6',1,2,'{"n":1,"tc":1.0,"usd":0.0,"rt":0.0,"stops":{"completed":[1,1796079814514]},"dur":{"p-97":1},"tch":{"1.0":1},"usdh":{"z":1},"req":0,"tok":0.0,"tokh":{},"tools":{"lookup":1},"fail":{},"ev":2}');
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
