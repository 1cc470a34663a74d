-- A run store at schema version 2, written by agent-otel at commit 421a0d4a59f446c0cb05edf0abd03416feedb6c3
-- (the last commit of main at that schema), generated once: git archive 421a0d4a59f446c0cb05edf0abd03416feedb6c3 src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v2; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','2');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079802240');
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
INSERT INTO agent_runs VALUES('800704cfb3d14249a0945cbfeb124f83','275c96ad453894803104db4a85de1092','225d8801baf9fe9f','agent-v2',NULL,'2026-11-30 23:03:22.133','2026-11-30 23:03:22.152',19.719999999999998863,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','ae8bbdf816a02761da7c1234','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('3a357ad6fdcc45dd824d2be054b0bc19','15dfc10ff7c4a2e0fff5e5ca333d84d1','9cb2727f991b0cd2','agent-v2',NULL,'2026-11-30 23:03:22.153','2026-11-30 23:03:22.153',0.44300000000000000488,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','c21a10f56657c870dab0d963','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('baecc1cba70143379f954971e5e6463c','32351dcf23b224f5cea28a710f9934f0','5febf40e6679d1ac','agent-v2',NULL,'2026-11-30 23:03:22.154','2026-11-30 23:03:22.154',0.92600000000000004529,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','fde2e7aa9599730464c09ec6','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('ae4bc6b85626481487f56229d99bf8be','128757575e9a2e04f764f1dc98e68c63','680af3922f6d1f89','agent-v2',NULL,'2026-11-30 23:03:22.155','2026-11-30 23:03:22.155',0.50100000000000000088,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','18923a6bd3c37a39e9992e24','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('87aff435f11e47c999eaf7b5f91e9385','128757575e9a2e04f764f1dc98e68c63','c2a3968d396f9e29','sub-v2','ae4bc6b85626481487f56229d99bf8be','2026-11-30 23:03:22.155','2026-11-30 23:03:22.155',0.090999999999999997557,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('d332f8fc0012487aa6e34f6403f35ca8','9b1cf23110ddeacb66f3ca0feb59b0d8','9e74a0c97de646c2','agent-v2',NULL,'2026-11-30 23:03:22.156','2026-11-30 23:03:22.156',0.19000000000000000222,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','04be84b25ed4f7d15bb17702','up-v2',NULL,NULL);
INSERT INTO agent_runs VALUES('4386006f96af4474a8c66190ed140b6b','19bbc2d3fd018236ae00e994e394d959','9b7299961a27b3c0','agent-v2',NULL,'2026-11-30 23:03:22.196','2026-11-30 23:03:22.197',1.1550000000000000266,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','8bc71b038137f7a1284433c4','up-v2',NULL,NULL);
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
INSERT INTO agent_events VALUES(1,'800704cfb3d14249a0945cbfeb124f83','tool_result',1796079802153,1,'lookup','96652fdb56fd3ccb8113d51b','e97785a3e7b8a299c6fb2317',0.014999999999999999444,'ok',NULL,NULL,NULL,'275c96ad453894803104db4a85de1092','e898f0a204c2462b','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'800704cfb3d14249a0945cbfeb124f83','tool_result',1796079802153,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.0080000000000000001665,'ok',NULL,NULL,NULL,'275c96ad453894803104db4a85de1092','d969072c5ed090c3','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'800704cfb3d14249a0945cbfeb124f83','llm_result',1796079802153,3,NULL,NULL,NULL,0.056000000000000001165,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','275c96ad453894803104db4a85de1092','54d927c53c607af1','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'800704cfb3d14249a0945cbfeb124f83','stop',1796079802153,NULL,NULL,NULL,NULL,19.719999999999998863,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 19.72}','275c96ad453894803104db4a85de1092','225d8801baf9fe9f','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'3a357ad6fdcc45dd824d2be054b0bc19','tool_result',1796079802154,1,'lookup','c84ea86b59b36df28456c1af','7a81bf018ea9c88fc534c21a',0.0070000000000000001457,'ok',NULL,NULL,NULL,'15dfc10ff7c4a2e0fff5e5ca333d84d1','a3757057608daa7d','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'3a357ad6fdcc45dd824d2be054b0bc19','tool_result',1796079802154,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.005000000000000000104,'ok',NULL,NULL,NULL,'15dfc10ff7c4a2e0fff5e5ca333d84d1','641ab6d8dcc6a8fd','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'3a357ad6fdcc45dd824d2be054b0bc19','llm_result',1796079802154,3,NULL,NULL,NULL,0.19400000000000000577,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','15dfc10ff7c4a2e0fff5e5ca333d84d1','f8e4e79d21213945','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'3a357ad6fdcc45dd824d2be054b0bc19','stop',1796079802154,NULL,NULL,NULL,NULL,0.44300000000000000488,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.443}','15dfc10ff7c4a2e0fff5e5ca333d84d1','9cb2727f991b0cd2','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'baecc1cba70143379f954971e5e6463c','tool_result',1796079802154,1,'lookup','bb4fbbe1977c372310c6ee42','5d304d5ccc0eb6e92007ecf4',0.0060000000000000001249,'ok',NULL,NULL,NULL,'32351dcf23b224f5cea28a710f9934f0','b23acef4e6c39f60','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'baecc1cba70143379f954971e5e6463c','tool_result',1796079802154,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.0040000000000000000832,'ok',NULL,NULL,NULL,'32351dcf23b224f5cea28a710f9934f0','10668770a6987069','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'baecc1cba70143379f954971e5e6463c','llm_result',1796079802154,3,NULL,NULL,NULL,0.026999999999999999694,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','32351dcf23b224f5cea28a710f9934f0','d41adc854d3ca5ba','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'baecc1cba70143379f954971e5e6463c','tool_result',1796079802155,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.010000000000000000208,'error','ValueError',NULL,NULL,'32351dcf23b224f5cea28a710f9934f0','bc9d32ee81589d82','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'baecc1cba70143379f954971e5e6463c','stop',1796079802155,NULL,NULL,NULL,NULL,0.92600000000000004529,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.926}','32351dcf23b224f5cea28a710f9934f0','5febf40e6679d1ac','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'ae4bc6b85626481487f56229d99bf8be','tool_result',1796079802155,1,'lookup','0556f41d5225a20ef5cd935f','e7cdb28fc0d22c1b40c1abfb',0.010000000000000000208,'ok',NULL,NULL,NULL,'128757575e9a2e04f764f1dc98e68c63','a6005dddd5d6740a','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'ae4bc6b85626481487f56229d99bf8be','tool_result',1796079802155,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.0060000000000000001249,'ok',NULL,NULL,NULL,'128757575e9a2e04f764f1dc98e68c63','96b9179195a0e14f','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'ae4bc6b85626481487f56229d99bf8be','llm_result',1796079802155,3,NULL,NULL,NULL,0.029999999999999998889,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','128757575e9a2e04f764f1dc98e68c63','97910621a98d557c','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'87aff435f11e47c999eaf7b5f91e9385','tool_result',1796079802155,1,'lookup','adb3c60b6132729e0b3cb6fa','c967f6cc71d80375a1ca9e35',0.0040000000000000000832,'ok',NULL,NULL,NULL,'128757575e9a2e04f764f1dc98e68c63','282b2e9d61f9fc5c','sub-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'87aff435f11e47c999eaf7b5f91e9385','stop',1796079802156,NULL,NULL,NULL,NULL,0.090999999999999997557,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.091}','128757575e9a2e04f764f1dc98e68c63','c2a3968d396f9e29','sub-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'ae4bc6b85626481487f56229d99bf8be','stop',1796079802156,NULL,NULL,NULL,NULL,0.50100000000000000088,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.501}','128757575e9a2e04f764f1dc98e68c63','680af3922f6d1f89','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'d332f8fc0012487aa6e34f6403f35ca8','tool_result',1796079802156,1,'lookup','042e9c312164c4ca2d430c93','88a9a00adb01ed843e8075b5',0.0040000000000000000832,'ok',NULL,NULL,NULL,'9b1cf23110ddeacb66f3ca0feb59b0d8','d5470465567b4772','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'d332f8fc0012487aa6e34f6403f35ca8','tool_result',1796079802156,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.0040000000000000000832,'ok',NULL,NULL,NULL,'9b1cf23110ddeacb66f3ca0feb59b0d8','9c90bd2fadc2f0c2','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'d332f8fc0012487aa6e34f6403f35ca8','llm_result',1796079802156,3,NULL,NULL,NULL,0.025000000000000001387,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','9b1cf23110ddeacb66f3ca0feb59b0d8','52f00a2688c483e3','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'d332f8fc0012487aa6e34f6403f35ca8','stop',1796079802156,NULL,NULL,NULL,NULL,0.19000000000000000222,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.19}','9b1cf23110ddeacb66f3ca0feb59b0d8','9e74a0c97de646c2','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'4386006f96af4474a8c66190ed140b6b','tool_result',1796079802196,1,'lookup','553dc679b51bceed5bf3c593','9000f51d2ae7f32febb256bf',0.0089999999999999993199,'ok',NULL,NULL,NULL,'19bbc2d3fd018236ae00e994e394d959','8cac146292bee472','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'4386006f96af4474a8c66190ed140b6b','tool_result',1796079802197,2,'lookup','e0cdf2f1808bcd1d1ad92b09','db8d446de6fcb10d051a3cf3',0.0040000000000000000832,'ok',NULL,NULL,NULL,'19bbc2d3fd018236ae00e994e394d959','088779aa6d21a144','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'4386006f96af4474a8c66190ed140b6b','llm_result',1796079802197,3,NULL,NULL,NULL,0.067000000000000003996,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','19bbc2d3fd018236ae00e994e394d959','5f55d1d51196fe64','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'4386006f96af4474a8c66190ed140b6b','tool_result',1796079802197,4,'fail','6612a97f9e90199e223f238c',NULL,0.022999999999999999611,'error','ValueError',NULL,NULL,'19bbc2d3fd018236ae00e994e394d959','0f6e9119242d803d','agent-v2',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'4386006f96af4474a8c66190ed140b6b','stop',1796079802197,NULL,NULL,NULL,NULL,1.1550000000000000266,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 1.155}','19bbc2d3fd018236ae00e994e394d959','9b7299961a27b3c0','agent-v2',NULL,NULL,NULL);
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
);
INSERT INTO agent_snapshot_runs VALUES('800704cfb3d14249a0945cbfeb124f83',NULL,NULL,'agent-v2','gpt-4o','p1','t1','ae8bbdf816a02761da7c1234',1796079802133);
INSERT INTO agent_snapshot_runs VALUES('3a357ad6fdcc45dd824d2be054b0bc19',NULL,NULL,'agent-v2','gpt-4o','p1','t1','c21a10f56657c870dab0d963',1796079802153);
INSERT INTO agent_snapshot_runs VALUES('baecc1cba70143379f954971e5e6463c',NULL,NULL,'agent-v2','gpt-4o','p1','t1','fde2e7aa9599730464c09ec6',1796079802154);
INSERT INTO agent_snapshot_runs VALUES('ae4bc6b85626481487f56229d99bf8be',NULL,NULL,'agent-v2','gpt-4o','p1','t1','18923a6bd3c37a39e9992e24',1796079802155);
INSERT INTO agent_snapshot_runs VALUES('87aff435f11e47c999eaf7b5f91e9385','ae4bc6b85626481487f56229d99bf8be',NULL,'sub-v2',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796079802155);
INSERT INTO agent_snapshot_runs VALUES('d332f8fc0012487aa6e34f6403f35ca8',NULL,NULL,'agent-v2','gpt-4o','p1','t1','04be84b25ed4f7d15bb17702',1796079802156);
INSERT INTO agent_snapshot_runs VALUES('4386006f96af4474a8c66190ed140b6b',NULL,NULL,'agent-v2','gpt-4o','p1','t1','8bc71b038137f7a1284433c4',1796079802196);
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
INSERT INTO agent_tool_snapshots VALUES('800704cfb3d14249a0945cbfeb124f83',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','e97785a3e7b8a299c6fb2317','e97785a3e7b8a299c6fb2317',NULL,NULL,1796079802153);
INSERT INTO agent_tool_snapshots VALUES('800704cfb3d14249a0945cbfeb124f83',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802153);
INSERT INTO agent_tool_snapshots VALUES('3a357ad6fdcc45dd824d2be054b0bc19',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','7a81bf018ea9c88fc534c21a','7a81bf018ea9c88fc534c21a',NULL,NULL,1796079802154);
INSERT INTO agent_tool_snapshots VALUES('3a357ad6fdcc45dd824d2be054b0bc19',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802154);
INSERT INTO agent_tool_snapshots VALUES('baecc1cba70143379f954971e5e6463c',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','5d304d5ccc0eb6e92007ecf4','5d304d5ccc0eb6e92007ecf4',NULL,NULL,1796079802154);
INSERT INTO agent_tool_snapshots VALUES('baecc1cba70143379f954971e5e6463c',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802154);
INSERT INTO agent_tool_snapshots VALUES('baecc1cba70143379f954971e5e6463c',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796079802155);
INSERT INTO agent_tool_snapshots VALUES('ae4bc6b85626481487f56229d99bf8be',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','e7cdb28fc0d22c1b40c1abfb','e7cdb28fc0d22c1b40c1abfb',NULL,NULL,1796079802155);
INSERT INTO agent_tool_snapshots VALUES('ae4bc6b85626481487f56229d99bf8be',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802155);
INSERT INTO agent_tool_snapshots VALUES('87aff435f11e47c999eaf7b5f91e9385',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','c967f6cc71d80375a1ca9e35','c967f6cc71d80375a1ca9e35',NULL,NULL,1796079802155);
INSERT INTO agent_tool_snapshots VALUES('d332f8fc0012487aa6e34f6403f35ca8',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','88a9a00adb01ed843e8075b5','88a9a00adb01ed843e8075b5',NULL,NULL,1796079802156);
INSERT INTO agent_tool_snapshots VALUES('d332f8fc0012487aa6e34f6403f35ca8',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802156);
INSERT INTO agent_tool_snapshots VALUES('4386006f96af4474a8c66190ed140b6b',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','9000f51d2ae7f32febb256bf','9000f51d2ae7f32febb256bf',NULL,NULL,1796079802196);
INSERT INTO agent_tool_snapshots VALUES('4386006f96af4474a8c66190ed140b6b',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','db8d446de6fcb10d051a3cf3','db8d446de6fcb10d051a3cf3',NULL,NULL,1796079802197);
INSERT INTO agent_tool_snapshots VALUES('4386006f96af4474a8c66190ed140b6b',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796079802197);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
INSERT INTO agent_snapshot_blobs VALUES('ae8bbdf816a02761da7c1234','json','',18,X'7b2269223a302c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('e97785a3e7b8a299c6fb2317','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('db8d446de6fcb10d051a3cf3','json','',38,X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('c21a10f56657c870dab0d963','json','',18,X'7b2269223a312c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('7a81bf018ea9c88fc534c21a','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('fde2e7aa9599730464c09ec6','json','',18,X'7b2269223a322c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('5d304d5ccc0eb6e92007ecf4','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('f48888df3c12375571593ad6','json','',87,X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('18923a6bd3c37a39e9992e24','json','',18,X'7b2269223a332c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('e7cdb28fc0d22c1b40c1abfb','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('0afbc7c3c11c0f7d165fc380','json','',7,X'226368696c6422',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('c967f6cc71d80375a1ca9e35','json','',39,X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('04be84b25ed4f7d15bb17702','json','',18,X'7b2269223a342c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('88a9a00adb01ed843e8075b5','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('8bc71b038137f7a1284433c4','json','',18,X'7b2269223a352c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('9000f51d2ae7f32febb256bf','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227632227d',1796079802239);
INSERT INTO agent_snapshot_blobs VALUES('9af957097d9f0a9a6860148d','json','',87,X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079802239);
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
