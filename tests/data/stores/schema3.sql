-- A run store at schema version 3, written by agent-otel at commit df580b3bf170bf7f2191056410700d4d129f4fc6
-- (the last commit of main at that schema), generated once: git archive df580b3bf170bf7f2191056410700d4d129f4fc6 src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v3; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','3');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079805374');
INSERT INTO agent_otel_meta VALUES('snapshot_gc_cutoff','1794870205374:14');
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
);
INSERT INTO agent_runs VALUES('d915e0508c84426eaab3736a0ad0f783','99f7e74b02c2dc0499262145c7d6a21a','ebd802385e07e59d','agent-v3',NULL,'2026-11-30 23:03:25.285','2026-11-30 23:03:25.290',5.3860000000000001207,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','9c2823b704df9c06441b1e86','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('ad074ffa684244ea85c8ecb8d4af8247','d612a85f1d18be7bbaff84f07f928721','84b25ed110ec683c','agent-v3',NULL,'2026-11-30 23:03:25.291','2026-11-30 23:03:25.291',0.37199999999999999733,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','324a7c61a551ec62455a2d3c','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('9dc5e93e4d1842f69b2a41da66ba02b2','6533c407a5c5705f2efe114d223c4117','b43c517c175ff6e2','agent-v3',NULL,'2026-11-30 23:03:25.292','2026-11-30 23:03:25.301',9.2560000000000002273,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','de0681bdd6cbc8ef098dec56','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('f5946904865843c5adedf10401f55be1','f3b593ce9506c90b8117ced1bff2ae88','edef45ea0f36560e','agent-v3',NULL,'2026-11-30 23:03:25.301','2026-11-30 23:03:25.301',0.84399999999999997246,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','39b839586fa48106607b46d8','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('18b5dd50aca242b484e2f895e744859f','f3b593ce9506c90b8117ced1bff2ae88','a16accb7e4a2c1de','sub-v3','f5946904865843c5adedf10401f55be1','2026-11-30 23:03:25.302','2026-11-30 23:03:25.302',0.12099999999999999644,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('0d42a04ed6eb4bb0aa457f47d1e7902a','a0ee2ec55903a304cd168cdbb28ea123','73892a78970d8e87','agent-v3',NULL,'2026-11-30 23:03:25.302','2026-11-30 23:03:25.302',0.23799999999999998934,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','9a4be69a0e9dabda138defcb','up-v3',NULL,NULL);
INSERT INTO agent_runs VALUES('fbd7479164004e25a77af7b460d9a9c2','0e9224ea29180b7c4811dc161500212f','db8ed0e8965431ef','agent-v3',NULL,'2026-11-30 23:03:25.302','2026-11-30 23:03:25.302',0.58299999999999996269,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','a2b4769fa31e0798b7f67e5d','up-v3',NULL,NULL);
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
INSERT INTO agent_events VALUES(1,'d915e0508c84426eaab3736a0ad0f783','tool_result',1796079805290,1,'lookup','96652fdb56fd3ccb8113d51b','9ed55d8e1e0d4bef2e004609',0.017999999999999998639,'ok',NULL,NULL,NULL,'99f7e74b02c2dc0499262145c7d6a21a','55e85c0654235354','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'d915e0508c84426eaab3736a0ad0f783','tool_result',1796079805291,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.010999999999999999361,'ok',NULL,NULL,NULL,'99f7e74b02c2dc0499262145c7d6a21a','16dd75d4646ebba4','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'d915e0508c84426eaab3736a0ad0f783','llm_result',1796079805291,3,NULL,NULL,NULL,0.026999999999999999694,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','99f7e74b02c2dc0499262145c7d6a21a','c7d30f99a6385b67','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'d915e0508c84426eaab3736a0ad0f783','stop',1796079805291,NULL,NULL,NULL,NULL,5.3860000000000001207,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 5.386}','99f7e74b02c2dc0499262145c7d6a21a','ebd802385e07e59d','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'ad074ffa684244ea85c8ecb8d4af8247','tool_result',1796079805291,1,'lookup','c84ea86b59b36df28456c1af','2d36e4187929b04bbb03b7c2',0.010000000000000000208,'ok',NULL,NULL,NULL,'d612a85f1d18be7bbaff84f07f928721','f2f2624af8918435','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'ad074ffa684244ea85c8ecb8d4af8247','tool_result',1796079805291,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.0070000000000000001457,'ok',NULL,NULL,NULL,'d612a85f1d18be7bbaff84f07f928721','a05873017d3a414b','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'ad074ffa684244ea85c8ecb8d4af8247','llm_result',1796079805291,3,NULL,NULL,NULL,0.014000000000000000291,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','d612a85f1d18be7bbaff84f07f928721','d5b24ada9d376ace','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'ad074ffa684244ea85c8ecb8d4af8247','stop',1796079805292,NULL,NULL,NULL,NULL,0.37199999999999999733,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.372}','d612a85f1d18be7bbaff84f07f928721','84b25ed110ec683c','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'9dc5e93e4d1842f69b2a41da66ba02b2','tool_result',1796079805292,1,'lookup','bb4fbbe1977c372310c6ee42','87bac75ff2d6492cf9541b21',0.0070000000000000001457,'ok',NULL,NULL,NULL,'6533c407a5c5705f2efe114d223c4117','701fce84fc3038a9','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'9dc5e93e4d1842f69b2a41da66ba02b2','tool_result',1796079805292,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.0070000000000000001457,'ok',NULL,NULL,NULL,'6533c407a5c5705f2efe114d223c4117','f84404166a28e189','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'9dc5e93e4d1842f69b2a41da66ba02b2','llm_result',1796079805292,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','6533c407a5c5705f2efe114d223c4117','edda285ed9ca51d9','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'9dc5e93e4d1842f69b2a41da66ba02b2','tool_result',1796079805301,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.014000000000000000291,'error','ValueError',NULL,NULL,'6533c407a5c5705f2efe114d223c4117','32942b7cf402ad33','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'9dc5e93e4d1842f69b2a41da66ba02b2','stop',1796079805301,NULL,NULL,NULL,NULL,9.2560000000000002273,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 9.256}','6533c407a5c5705f2efe114d223c4117','b43c517c175ff6e2','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'f5946904865843c5adedf10401f55be1','tool_result',1796079805301,1,'lookup','0556f41d5225a20ef5cd935f','40a3a59637c7354a97ee91d8',0.017999999999999998639,'ok',NULL,NULL,NULL,'f3b593ce9506c90b8117ced1bff2ae88','a01a0f2e655a230e','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'f5946904865843c5adedf10401f55be1','tool_result',1796079805301,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.0070000000000000001457,'ok',NULL,NULL,NULL,'f3b593ce9506c90b8117ced1bff2ae88','eb63c723cce26b6d','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'f5946904865843c5adedf10401f55be1','llm_result',1796079805301,3,NULL,NULL,NULL,0.017000000000000001221,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','f3b593ce9506c90b8117ced1bff2ae88','f790a4098c8d39fa','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'18b5dd50aca242b484e2f895e744859f','tool_result',1796079805302,1,'lookup','adb3c60b6132729e0b3cb6fa','5735fe88d71f26e6a9724409',0.0060000000000000001249,'ok',NULL,NULL,NULL,'f3b593ce9506c90b8117ced1bff2ae88','396ad11827d65e04','sub-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'18b5dd50aca242b484e2f895e744859f','stop',1796079805302,NULL,NULL,NULL,NULL,0.12099999999999999644,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.121}','f3b593ce9506c90b8117ced1bff2ae88','a16accb7e4a2c1de','sub-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'f5946904865843c5adedf10401f55be1','stop',1796079805302,NULL,NULL,NULL,NULL,0.84399999999999997246,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.844}','f3b593ce9506c90b8117ced1bff2ae88','edef45ea0f36560e','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'0d42a04ed6eb4bb0aa457f47d1e7902a','tool_result',1796079805302,1,'lookup','042e9c312164c4ca2d430c93','f4aee12583b3bf95095b4687',0.0070000000000000001457,'ok',NULL,NULL,NULL,'a0ee2ec55903a304cd168cdbb28ea123','caca0434c072efc0','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'0d42a04ed6eb4bb0aa457f47d1e7902a','tool_result',1796079805302,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.0040000000000000000832,'ok',NULL,NULL,NULL,'a0ee2ec55903a304cd168cdbb28ea123','caf84c1a7c5d248b','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'0d42a04ed6eb4bb0aa457f47d1e7902a','llm_result',1796079805302,3,NULL,NULL,NULL,0.012999999999999999403,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','a0ee2ec55903a304cd168cdbb28ea123','4ff202acd09e8ad5','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'0d42a04ed6eb4bb0aa457f47d1e7902a','stop',1796079805302,NULL,NULL,NULL,NULL,0.23799999999999998934,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.238}','a0ee2ec55903a304cd168cdbb28ea123','73892a78970d8e87','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'fbd7479164004e25a77af7b460d9a9c2','tool_result',1796079805302,1,'lookup','553dc679b51bceed5bf3c593','079ce7229c8ad42ef690fe41',0.005000000000000000104,'ok',NULL,NULL,NULL,'0e9224ea29180b7c4811dc161500212f','821f4b293e536b9e','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'fbd7479164004e25a77af7b460d9a9c2','tool_result',1796079805303,2,'lookup','e0cdf2f1808bcd1d1ad92b09','954bfc967f4d66034a1fb7ca',0.0040000000000000000832,'ok',NULL,NULL,NULL,'0e9224ea29180b7c4811dc161500212f','320287accfbb95f9','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'fbd7479164004e25a77af7b460d9a9c2','llm_result',1796079805303,3,NULL,NULL,NULL,0.010000000000000000208,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','0e9224ea29180b7c4811dc161500212f','52ec2c5a7d8c6b40','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'fbd7479164004e25a77af7b460d9a9c2','tool_result',1796079805303,4,'fail','6612a97f9e90199e223f238c',NULL,0.012000000000000000249,'error','ValueError',NULL,NULL,'0e9224ea29180b7c4811dc161500212f','8c7c4497a28a1605','agent-v3',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'fbd7479164004e25a77af7b460d9a9c2','stop',1796079805303,NULL,NULL,NULL,NULL,0.58299999999999996269,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.583}','0e9224ea29180b7c4811dc161500212f','db8ed0e8965431ef','agent-v3',NULL,NULL,NULL);
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
INSERT INTO agent_snapshot_runs VALUES('d915e0508c84426eaab3736a0ad0f783',NULL,NULL,'agent-v3','gpt-4o','p1','t1','9c2823b704df9c06441b1e86',1796079805285,NULL);
INSERT INTO agent_snapshot_runs VALUES('ad074ffa684244ea85c8ecb8d4af8247',NULL,NULL,'agent-v3','gpt-4o','p1','t1','324a7c61a551ec62455a2d3c',1796079805291,NULL);
INSERT INTO agent_snapshot_runs VALUES('9dc5e93e4d1842f69b2a41da66ba02b2',NULL,NULL,'agent-v3','gpt-4o','p1','t1','de0681bdd6cbc8ef098dec56',1796079805292,NULL);
INSERT INTO agent_snapshot_runs VALUES('f5946904865843c5adedf10401f55be1',NULL,NULL,'agent-v3','gpt-4o','p1','t1','39b839586fa48106607b46d8',1796079805301,NULL);
INSERT INTO agent_snapshot_runs VALUES('18b5dd50aca242b484e2f895e744859f','f5946904865843c5adedf10401f55be1',NULL,'sub-v3',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796079805302,NULL);
INSERT INTO agent_snapshot_runs VALUES('0d42a04ed6eb4bb0aa457f47d1e7902a',NULL,NULL,'agent-v3','gpt-4o','p1','t1','9a4be69a0e9dabda138defcb',1796079805302,NULL);
INSERT INTO agent_snapshot_runs VALUES('fbd7479164004e25a77af7b460d9a9c2',NULL,NULL,'agent-v3','gpt-4o','p1','t1','a2b4769fa31e0798b7f67e5d',1796079805302,NULL);
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
INSERT INTO agent_tool_snapshots VALUES('d915e0508c84426eaab3736a0ad0f783',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','9ed55d8e1e0d4bef2e004609','9ed55d8e1e0d4bef2e004609',NULL,NULL,1796079805290);
INSERT INTO agent_tool_snapshots VALUES('d915e0508c84426eaab3736a0ad0f783',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805291);
INSERT INTO agent_tool_snapshots VALUES('ad074ffa684244ea85c8ecb8d4af8247',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','2d36e4187929b04bbb03b7c2','2d36e4187929b04bbb03b7c2',NULL,NULL,1796079805291);
INSERT INTO agent_tool_snapshots VALUES('ad074ffa684244ea85c8ecb8d4af8247',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805291);
INSERT INTO agent_tool_snapshots VALUES('9dc5e93e4d1842f69b2a41da66ba02b2',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','87bac75ff2d6492cf9541b21','87bac75ff2d6492cf9541b21',NULL,NULL,1796079805292);
INSERT INTO agent_tool_snapshots VALUES('9dc5e93e4d1842f69b2a41da66ba02b2',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805292);
INSERT INTO agent_tool_snapshots VALUES('9dc5e93e4d1842f69b2a41da66ba02b2',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796079805301);
INSERT INTO agent_tool_snapshots VALUES('f5946904865843c5adedf10401f55be1',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','40a3a59637c7354a97ee91d8','40a3a59637c7354a97ee91d8',NULL,NULL,1796079805301);
INSERT INTO agent_tool_snapshots VALUES('f5946904865843c5adedf10401f55be1',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805301);
INSERT INTO agent_tool_snapshots VALUES('18b5dd50aca242b484e2f895e744859f',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','5735fe88d71f26e6a9724409','5735fe88d71f26e6a9724409',NULL,NULL,1796079805302);
INSERT INTO agent_tool_snapshots VALUES('0d42a04ed6eb4bb0aa457f47d1e7902a',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','f4aee12583b3bf95095b4687','f4aee12583b3bf95095b4687',NULL,NULL,1796079805302);
INSERT INTO agent_tool_snapshots VALUES('0d42a04ed6eb4bb0aa457f47d1e7902a',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805302);
INSERT INTO agent_tool_snapshots VALUES('fbd7479164004e25a77af7b460d9a9c2',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','079ce7229c8ad42ef690fe41','079ce7229c8ad42ef690fe41',NULL,NULL,1796079805302);
INSERT INTO agent_tool_snapshots VALUES('fbd7479164004e25a77af7b460d9a9c2',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','954bfc967f4d66034a1fb7ca','954bfc967f4d66034a1fb7ca',NULL,NULL,1796079805303);
INSERT INTO agent_tool_snapshots VALUES('fbd7479164004e25a77af7b460d9a9c2',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796079805303);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
INSERT INTO agent_snapshot_blobs VALUES('9c2823b704df9c06441b1e86','json','',18,X'7b2269223a302c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('9ed55d8e1e0d4bef2e004609','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('954bfc967f4d66034a1fb7ca','json','',38,X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('324a7c61a551ec62455a2d3c','json','',18,X'7b2269223a312c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('2d36e4187929b04bbb03b7c2','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('de0681bdd6cbc8ef098dec56','json','',18,X'7b2269223a322c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('87bac75ff2d6492cf9541b21','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('f48888df3c12375571593ad6','json','',87,X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('39b839586fa48106607b46d8','json','',18,X'7b2269223a332c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('40a3a59637c7354a97ee91d8','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('0afbc7c3c11c0f7d165fc380','json','',7,X'226368696c6422',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('5735fe88d71f26e6a9724409','json','',39,X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('9a4be69a0e9dabda138defcb','json','',18,X'7b2269223a342c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('f4aee12583b3bf95095b4687','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('a2b4769fa31e0798b7f67e5d','json','',18,X'7b2269223a352c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('079ce7229c8ad42ef690fe41','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227633227d',1796079805359);
INSERT INTO agent_snapshot_blobs VALUES('9af957097d9f0a9a6860148d','json','',87,X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079805359);
CREATE INDEX agent_runs_created_at ON agent_runs (created_at);
CREATE INDEX agent_runs_agent_created_at ON agent_runs (agent, created_at);
CREATE INDEX agent_runs_parent ON agent_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX agent_events_run ON agent_events (run_id, step_id);
CREATE INDEX agent_events_ts ON agent_events (ts_ms);
CREATE INDEX agent_snapshot_runs_created ON agent_snapshot_runs (created_at_ms);
CREATE INDEX agent_snapshot_runs_parent ON agent_snapshot_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX agent_tool_snapshots_created ON agent_tool_snapshots (created_at_ms);
CREATE INDEX agent_snapshot_blobs_used ON agent_snapshot_blobs (last_used_ms);
COMMIT;
