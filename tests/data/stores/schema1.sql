-- A run store at schema version 1, written by agent-otel at commit 4a5f3cd2094023a5561847c6889c0ece80db5202
-- (the last commit of main at that schema), generated once: git archive 4a5f3cd2094023a5561847c6889c0ece80db5202 src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v1; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','1');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079798668');
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
INSERT INTO agent_runs VALUES('17872923007c4f8da8d6fb749dc22a8e','fc5c4ac3b83443b81d04d040736ddfc2','177ab52802fd3c1e','agent-v1',NULL,'2026-11-30 23:03:18.591','2026-11-30 23:03:18.600',9.4540000000000006252,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','a89aa6eb464ab2f833100347','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('3aad7d6a0d3c4111adbf0ebe917a094b','f620143f87765b143405a8c67230227e','8d3ef596d4c915e0','agent-v1',NULL,'2026-11-30 23:03:18.601','2026-11-30 23:03:18.601',0.25300000000000000266,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','8021eddb17377bc8b192401d','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('1dba7e8562824acfadab59e1dd49da28','c40cd4e037957a66656e8c942a4e1673','e080f2f618c46352','agent-v1',NULL,'2026-11-30 23:03:18.601','2026-11-30 23:03:18.601',0.8239999999999999547,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','1952622ffb617cb8ad0d9cfc','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('1562f8b553c349d5970911a8ff4ad76a','9e7663f08d321c13a42c62d4a8e755f0','0c01de0168f330b4','agent-v1',NULL,'2026-11-30 23:03:18.602','2026-11-30 23:03:18.602',0.42999999999999999333,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','38c1cafa4c9191c196e79bac','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('92421202eda641008c5c95629730b53f','9e7663f08d321c13a42c62d4a8e755f0','8f551590d66ef658','sub-v1','1562f8b553c349d5970911a8ff4ad76a','2026-11-30 23:03:18.602','2026-11-30 23:03:18.602',0.081000000000000002553,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('537d3345a6f24426aaf122efb2851505','9d14dd8d7bdd415bb27e449cbf7d971d','7404db440a1acd7f','agent-v1',NULL,'2026-11-30 23:03:18.603','2026-11-30 23:03:18.603',0.17000000000000001221,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','13ebec54001d9a05f4335972','up-v1',NULL,NULL);
INSERT INTO agent_runs VALUES('876e3f7d685043c3be994df7156e599e','8d9fbe11ca68a3a5fa79dabfe231c512','5501948a3588574a','agent-v1',NULL,'2026-11-30 23:03:18.603','2026-11-30 23:03:18.603',0.53000000000000002664,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','328cab84ad54d5444f5bc0e6','up-v1',NULL,NULL);
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
INSERT INTO agent_events VALUES(1,'17872923007c4f8da8d6fb749dc22a8e','tool_result',1796079798600,1,'lookup','96652fdb56fd3ccb8113d51b','1a4fd9246d33517af93399df',0.012999999999999999403,'ok',NULL,NULL,NULL,'fc5c4ac3b83443b81d04d040736ddfc2','a41c5d893be7e64c','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'17872923007c4f8da8d6fb749dc22a8e','tool_result',1796079798600,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.010000000000000000208,'ok',NULL,NULL,NULL,'fc5c4ac3b83443b81d04d040736ddfc2','a26e92b82c3a665c','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'17872923007c4f8da8d6fb749dc22a8e','llm_result',1796079798600,3,NULL,NULL,NULL,0.047000000000000000111,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','fc5c4ac3b83443b81d04d040736ddfc2','541a17bbf2a7497e','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'17872923007c4f8da8d6fb749dc22a8e','stop',1796079798601,NULL,NULL,NULL,NULL,9.4540000000000006252,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 9.454}','fc5c4ac3b83443b81d04d040736ddfc2','177ab52802fd3c1e','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'3aad7d6a0d3c4111adbf0ebe917a094b','tool_result',1796079798601,1,'lookup','c84ea86b59b36df28456c1af','365346543681e767de8718b8',0.0080000000000000001665,'ok',NULL,NULL,NULL,'f620143f87765b143405a8c67230227e','7afc62aa4cd5a81e','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'3aad7d6a0d3c4111adbf0ebe917a094b','tool_result',1796079798601,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.0040000000000000000832,'ok',NULL,NULL,NULL,'f620143f87765b143405a8c67230227e','2825786ababd6e1e','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'3aad7d6a0d3c4111adbf0ebe917a094b','llm_result',1796079798601,3,NULL,NULL,NULL,0.03500000000000000333,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','f620143f87765b143405a8c67230227e','12df6476c21f8cf5','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'3aad7d6a0d3c4111adbf0ebe917a094b','stop',1796079798601,NULL,NULL,NULL,NULL,0.25300000000000000266,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.253}','f620143f87765b143405a8c67230227e','8d3ef596d4c915e0','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'1dba7e8562824acfadab59e1dd49da28','tool_result',1796079798601,1,'lookup','bb4fbbe1977c372310c6ee42','2135e61c6820b980270872f0',0.005000000000000000104,'ok',NULL,NULL,NULL,'c40cd4e037957a66656e8c942a4e1673','07433a30d525a361','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'1dba7e8562824acfadab59e1dd49da28','tool_result',1796079798601,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.0040000000000000000832,'ok',NULL,NULL,NULL,'c40cd4e037957a66656e8c942a4e1673','788c9848366c2a12','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'1dba7e8562824acfadab59e1dd49da28','llm_result',1796079798601,3,NULL,NULL,NULL,0.021999999999999998723,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','c40cd4e037957a66656e8c942a4e1673','4f106bfa016523fd','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'1dba7e8562824acfadab59e1dd49da28','tool_result',1796079798602,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.010999999999999999361,'error','ValueError',NULL,NULL,'c40cd4e037957a66656e8c942a4e1673','c45f2814fecbccaa','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'1dba7e8562824acfadab59e1dd49da28','stop',1796079798602,NULL,NULL,NULL,NULL,0.8239999999999999547,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.824}','c40cd4e037957a66656e8c942a4e1673','e080f2f618c46352','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'1562f8b553c349d5970911a8ff4ad76a','tool_result',1796079798602,1,'lookup','0556f41d5225a20ef5cd935f','df434e6ed70b87e1d722ca50',0.0089999999999999993199,'ok',NULL,NULL,NULL,'9e7663f08d321c13a42c62d4a8e755f0','0c5e12c8d5c3f999','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'1562f8b553c349d5970911a8ff4ad76a','tool_result',1796079798602,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.0040000000000000000832,'ok',NULL,NULL,NULL,'9e7663f08d321c13a42c62d4a8e755f0','0d0cf4421d164e59','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'1562f8b553c349d5970911a8ff4ad76a','llm_result',1796079798602,3,NULL,NULL,NULL,0.025999999999999998806,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','9e7663f08d321c13a42c62d4a8e755f0','be72bfcdb1ba0e3d','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'92421202eda641008c5c95629730b53f','tool_result',1796079798602,1,'lookup','adb3c60b6132729e0b3cb6fa','3e29edc91f36ed2f131e31d0',0.0040000000000000000832,'ok',NULL,NULL,NULL,'9e7663f08d321c13a42c62d4a8e755f0','f5799a5363f45dc6','sub-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'92421202eda641008c5c95629730b53f','stop',1796079798603,NULL,NULL,NULL,NULL,0.081000000000000002553,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.081}','9e7663f08d321c13a42c62d4a8e755f0','8f551590d66ef658','sub-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'1562f8b553c349d5970911a8ff4ad76a','stop',1796079798603,NULL,NULL,NULL,NULL,0.42999999999999999333,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.43}','9e7663f08d321c13a42c62d4a8e755f0','0c01de0168f330b4','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'537d3345a6f24426aaf122efb2851505','tool_result',1796079798603,1,'lookup','042e9c312164c4ca2d430c93','6dc6534f667881463cfc69db',0.0040000000000000000832,'ok',NULL,NULL,NULL,'9d14dd8d7bdd415bb27e449cbf7d971d','1545ebbc317bfb29','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'537d3345a6f24426aaf122efb2851505','tool_result',1796079798603,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.0030000000000000000624,'ok',NULL,NULL,NULL,'9d14dd8d7bdd415bb27e449cbf7d971d','b2b9f4e6f1a74bc8','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'537d3345a6f24426aaf122efb2851505','llm_result',1796079798603,3,NULL,NULL,NULL,0.018999999999999999528,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','9d14dd8d7bdd415bb27e449cbf7d971d','32dfa94af165d977','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'537d3345a6f24426aaf122efb2851505','stop',1796079798603,NULL,NULL,NULL,NULL,0.17000000000000001221,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.17}','9d14dd8d7bdd415bb27e449cbf7d971d','7404db440a1acd7f','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'876e3f7d685043c3be994df7156e599e','tool_result',1796079798603,1,'lookup','553dc679b51bceed5bf3c593','4ff1a2c8a0199b873cdde0cc',0.0070000000000000001457,'ok',NULL,NULL,NULL,'8d9fbe11ca68a3a5fa79dabfe231c512','7948fa80fda5a20a','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'876e3f7d685043c3be994df7156e599e','tool_result',1796079798603,2,'lookup','e0cdf2f1808bcd1d1ad92b09','1be7c9e683e51a6d4345a82b',0.0030000000000000000624,'ok',NULL,NULL,NULL,'8d9fbe11ca68a3a5fa79dabfe231c512','9a2cea8565559ea5','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'876e3f7d685043c3be994df7156e599e','llm_result',1796079798603,3,NULL,NULL,NULL,0.020000000000000000416,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','8d9fbe11ca68a3a5fa79dabfe231c512','046202aef5af5c8c','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'876e3f7d685043c3be994df7156e599e','tool_result',1796079798603,4,'fail','6612a97f9e90199e223f238c',NULL,0.0089999999999999993199,'error','ValueError',NULL,NULL,'8d9fbe11ca68a3a5fa79dabfe231c512','a8d32683556e1b11','agent-v1',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'876e3f7d685043c3be994df7156e599e','stop',1796079798603,NULL,NULL,NULL,NULL,0.53000000000000002664,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 0.53}','8d9fbe11ca68a3a5fa79dabfe231c512','5501948a3588574a','agent-v1',NULL,NULL,NULL);
CREATE INDEX agent_runs_created_at ON agent_runs (created_at);
CREATE INDEX agent_runs_agent_created_at ON agent_runs (agent, created_at);
CREATE INDEX agent_runs_parent ON agent_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX agent_events_run ON agent_events (run_id, step_id);
CREATE INDEX agent_events_ts ON agent_events (ts_ms);
COMMIT;
