-- A run store at schema version 4, written by agent-otel at commit 62a71da45dd13611e96dc859d02446ebe02517ac
-- (the last commit of main at that schema), generated once: git archive 62a71da45dd13611e96dc859d02446ebe02517ac src | tar -x -C DIR;
-- PYTHONPATH=DIR/src python tests/data/stores/agent.py STORE 6 v4; sqlite3 STORE .dump > this file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE agent_otel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO agent_otel_meta VALUES('schema_version','4');
INSERT INTO agent_otel_meta VALUES('last_gc_ms','1796079807688');
INSERT INTO agent_otel_meta VALUES('snapshot_gc_cutoff','1794870207688:14');
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
, pid INTEGER, host TEXT, process_start TEXT, deadline_ms INTEGER);
INSERT INTO agent_runs VALUES('7ec9e5e02ec946aa861b1273e5212634','8e2469613a1f4e34a5a6c7673d48e0ed','3e6119dd5c523be1','agent-v4',NULL,'2026-11-30 23:03:27.611','2026-11-30 23:03:27.612',1.4630000000000000781,2,3,1,0,'completed','success',100,10,0.00034999999999999999644,'gpt-4o','p1','t1','b983e567d0cbada08630ca3a','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('80796b1336184b398c8067a52e10ec2b','2be647d7087d0acb8b6808098c6bd348','6e61a9eadef6898d','agent-v4',NULL,'2026-11-30 23:03:27.622','2026-11-30 23:03:27.622',0.33800000000000002264,2,3,1,0,'completed','success',101,10,0.000352500000000000003,'gpt-4o','p1','t1','66e0ea2ef84a63a21249ac1b','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('cdef2d3794c844f1b3055334c5accc2b','ac55076817dcf1fbb2693fce395d5afb','920a8069eb5aa71d','agent-v4',NULL,'2026-11-30 23:03:27.622','2026-11-30 23:03:27.623',1.2929999999999999271,3,4,1,0,'completed','success',102,10,0.00035500000000000000955,'gpt-4o','p1','t1','f5184a127a10fd937a72d570','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('410c7f514aa24bb09bb318e8844ef425','99dbb0fc60e3717fab97d5af00520a27','aaa04cd7209b74e0','agent-v4',NULL,'2026-11-30 23:03:27.624','2026-11-30 23:03:27.629',5.177999999999999936,2,3,1,0,'completed','success',103,10,0.00035750000000000001611,'gpt-4o','p1','t1','8b6735cd20652561dc5ac57d','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('8eb3ff77079642bfa30c1cf194bc8082','99dbb0fc60e3717fab97d5af00520a27','3978395bea68c088','sub-v4','410c7f514aa24bb09bb318e8844ef425','2026-11-30 23:03:27.629','2026-11-30 23:03:27.629',0.17799999999999999156,1,1,0,0,'completed','success',0,0,0.0,NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('c2c87a67fde64bd89fe30c8f23589e35','fc4f116e1972c938c1a41bb84d6f263c','fd37018aa40743e1','agent-v4',NULL,'2026-11-30 23:03:27.629','2026-11-30 23:03:27.629',0.26000000000000000888,2,3,1,0,'completed','success',104,10,0.00036000000000000002267,'gpt-4o','p1','t1','4f5f3f08184d54813322b298','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
INSERT INTO agent_runs VALUES('ec9a707bf40e4bedbc8d2858233e6133','cd31ee59f0353b6590687ed6e3140092','209d04cbc8e5b4c4','agent-v4',NULL,'2026-11-30 23:03:27.629','2026-11-30 23:03:27.630',1.0280000000000000248,3,4,1,0,'completed','success',105,10,0.00036249999999999997501,'gpt-4o','p1','t1','0ba5c73def5fb001e219de81','up-v4',NULL,NULL,29279,'vm','1156679f-64f8-49fd-948e-70ef4b060f46:pid:[4026531836]:6144600',NULL);
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
INSERT INTO agent_events VALUES(1,'7ec9e5e02ec946aa861b1273e5212634','tool_result',1796079807621,1,'lookup','96652fdb56fd3ccb8113d51b','e57cf707b9d2b4ee931ef00c',0.021999999999999998723,'ok',NULL,NULL,NULL,'8e2469613a1f4e34a5a6c7673d48e0ed','28cdebc0ec22c440','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(2,'7ec9e5e02ec946aa861b1273e5212634','tool_result',1796079807621,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.012000000000000000249,'ok',NULL,NULL,NULL,'8e2469613a1f4e34a5a6c7673d48e0ed','08e51a2ada79c8fd','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(3,'7ec9e5e02ec946aa861b1273e5212634','llm_result',1796079807621,3,NULL,NULL,NULL,0.029000000000000001471,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00035}','8e2469613a1f4e34a5a6c7673d48e0ed','08fc91f9d32cbed6','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(4,'7ec9e5e02ec946aa861b1273e5212634','stop',1796079807622,NULL,NULL,NULL,NULL,1.4630000000000000781,'success',NULL,'completed','{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "cost_usd": 0.00035, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 1.463}','8e2469613a1f4e34a5a6c7673d48e0ed','3e6119dd5c523be1','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(5,'80796b1336184b398c8067a52e10ec2b','tool_result',1796079807622,1,'lookup','c84ea86b59b36df28456c1af','54b6431defb2a911229781f9',0.010000000000000000208,'ok',NULL,NULL,NULL,'2be647d7087d0acb8b6808098c6bd348','213375677c10dc20','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(6,'80796b1336184b398c8067a52e10ec2b','tool_result',1796079807622,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.0060000000000000001249,'ok',NULL,NULL,NULL,'2be647d7087d0acb8b6808098c6bd348','57c54c7b4d727ff7','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(7,'80796b1336184b398c8067a52e10ec2b','llm_result',1796079807622,3,NULL,NULL,NULL,0.012999999999999999403,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 101, "output_tokens": 10, "cost_usd": 0.0003525}','2be647d7087d0acb8b6808098c6bd348','fcefe364c898334f','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(8,'80796b1336184b398c8067a52e10ec2b','stop',1796079807622,NULL,NULL,NULL,NULL,0.33800000000000002264,'success',NULL,'completed','{"input_tokens": 101, "output_tokens": 10, "total_tokens": 111, "cost_usd": 0.0003525, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.338}','2be647d7087d0acb8b6808098c6bd348','6e61a9eadef6898d','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(9,'cdef2d3794c844f1b3055334c5accc2b','tool_result',1796079807622,1,'lookup','bb4fbbe1977c372310c6ee42','28c06df80e325477660c158b',0.0080000000000000001665,'ok',NULL,NULL,NULL,'ac55076817dcf1fbb2693fce395d5afb','a6b3b96a00712b10','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(10,'cdef2d3794c844f1b3055334c5accc2b','tool_result',1796079807622,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.0070000000000000001457,'ok',NULL,NULL,NULL,'ac55076817dcf1fbb2693fce395d5afb','1ea227bb18b92197','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(11,'cdef2d3794c844f1b3055334c5accc2b','llm_result',1796079807623,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 102, "output_tokens": 10, "cost_usd": 0.000355}','ac55076817dcf1fbb2693fce395d5afb','ddaef471f55adca2','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(12,'cdef2d3794c844f1b3055334c5accc2b','tool_result',1796079807623,4,'fail','2f4bfe3d2e95bc0529abca83',NULL,0.012000000000000000249,'error','ValueError',NULL,NULL,'ac55076817dcf1fbb2693fce395d5afb','e45d8b4d9038b6e8','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(13,'cdef2d3794c844f1b3055334c5accc2b','stop',1796079807624,NULL,NULL,NULL,NULL,1.2929999999999999271,'success',NULL,'completed','{"input_tokens": 102, "output_tokens": 10, "total_tokens": 112, "cost_usd": 0.000355, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 1.293}','ac55076817dcf1fbb2693fce395d5afb','920a8069eb5aa71d','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(14,'410c7f514aa24bb09bb318e8844ef425','tool_result',1796079807628,1,'lookup','0556f41d5225a20ef5cd935f','3f91b955aa9a99adbbe61769',0.10199999999999999344,'ok',NULL,NULL,NULL,'99dbb0fc60e3717fab97d5af00520a27','24bd56c7d0a8b70d','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(15,'410c7f514aa24bb09bb318e8844ef425','tool_result',1796079807628,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.010000000000000000208,'ok',NULL,NULL,NULL,'99dbb0fc60e3717fab97d5af00520a27','65116fd2aab32458','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(16,'410c7f514aa24bb09bb318e8844ef425','llm_result',1796079807628,3,NULL,NULL,NULL,0.024000000000000000499,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 103, "output_tokens": 10, "cost_usd": 0.0003575}','99dbb0fc60e3717fab97d5af00520a27','107f294691fa7c30','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(17,'8eb3ff77079642bfa30c1cf194bc8082','tool_result',1796079807629,1,'lookup','adb3c60b6132729e0b3cb6fa','55fafca682b754c3373c88f6',0.0060000000000000001249,'ok',NULL,NULL,NULL,'99dbb0fc60e3717fab97d5af00520a27','774ce5b7dd87062a','sub-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(18,'8eb3ff77079642bfa30c1cf194bc8082','stop',1796079807629,NULL,NULL,NULL,NULL,0.17799999999999999156,'success',NULL,'completed','{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0, "tool_calls": 1, "llm_calls": 0, "steps": 1, "retries": 0, "duration_ms": 0.178}','99dbb0fc60e3717fab97d5af00520a27','3978395bea68c088','sub-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(19,'410c7f514aa24bb09bb318e8844ef425','stop',1796079807629,NULL,NULL,NULL,NULL,5.177999999999999936,'success',NULL,'completed','{"input_tokens": 103, "output_tokens": 10, "total_tokens": 113, "cost_usd": 0.0003575, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 5.178}','99dbb0fc60e3717fab97d5af00520a27','aaa04cd7209b74e0','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(20,'c2c87a67fde64bd89fe30c8f23589e35','tool_result',1796079807629,1,'lookup','042e9c312164c4ca2d430c93','f6c474ca2d5a7615d394b137',0.0060000000000000001249,'ok',NULL,NULL,NULL,'fc4f116e1972c938c1a41bb84d6f263c','21d33bb1646bccd6','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(21,'c2c87a67fde64bd89fe30c8f23589e35','tool_result',1796079807629,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.0040000000000000000832,'ok',NULL,NULL,NULL,'fc4f116e1972c938c1a41bb84d6f263c','12ec3f44063648de','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(22,'c2c87a67fde64bd89fe30c8f23589e35','llm_result',1796079807629,3,NULL,NULL,NULL,0.016000000000000000333,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 104, "output_tokens": 10, "cost_usd": 0.00036}','fc4f116e1972c938c1a41bb84d6f263c','76b5057a4437b9b6','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(23,'c2c87a67fde64bd89fe30c8f23589e35','stop',1796079807629,NULL,NULL,NULL,NULL,0.26000000000000000888,'success',NULL,'completed','{"input_tokens": 104, "output_tokens": 10, "total_tokens": 114, "cost_usd": 0.00036, "tool_calls": 2, "llm_calls": 1, "steps": 3, "retries": 0, "duration_ms": 0.26}','fc4f116e1972c938c1a41bb84d6f263c','fd37018aa40743e1','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(24,'ec9a707bf40e4bedbc8d2858233e6133','tool_result',1796079807630,1,'lookup','553dc679b51bceed5bf3c593','f2c33b3feafd1fe98c3dcd18',0.005000000000000000104,'ok',NULL,NULL,NULL,'cd31ee59f0353b6590687ed6e3140092','793f26964db217c4','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(25,'ec9a707bf40e4bedbc8d2858233e6133','tool_result',1796079807630,2,'lookup','e0cdf2f1808bcd1d1ad92b09','3009a555b9e724fca54df16f',0.0040000000000000000832,'ok',NULL,NULL,NULL,'cd31ee59f0353b6590687ed6e3140092','c1409516b2afe6fb','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(26,'ec9a707bf40e4bedbc8d2858233e6133','llm_result',1796079807630,3,NULL,NULL,NULL,0.0089999999999999993199,'ok',NULL,NULL,'{"model": "gpt-4o", "input_tokens": 105, "output_tokens": 10, "cost_usd": 0.0003625}','cd31ee59f0353b6590687ed6e3140092','4aefa038c973424d','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(27,'ec9a707bf40e4bedbc8d2858233e6133','tool_result',1796079807630,4,'fail','6612a97f9e90199e223f238c',NULL,0.010999999999999999361,'error','ValueError',NULL,NULL,'cd31ee59f0353b6590687ed6e3140092','d40a5e719453d5ad','agent-v4',NULL,NULL,NULL);
INSERT INTO agent_events VALUES(28,'ec9a707bf40e4bedbc8d2858233e6133','stop',1796079807631,NULL,NULL,NULL,NULL,1.0280000000000000248,'success',NULL,'completed','{"input_tokens": 105, "output_tokens": 10, "total_tokens": 115, "cost_usd": 0.0003625, "tool_calls": 3, "llm_calls": 1, "steps": 4, "retries": 0, "duration_ms": 1.028}','cd31ee59f0353b6590687ed6e3140092','209d04cbc8e5b4c4','agent-v4',NULL,NULL,NULL);
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
INSERT INTO agent_snapshot_runs VALUES('7ec9e5e02ec946aa861b1273e5212634',NULL,NULL,'agent-v4','gpt-4o','p1','t1','b983e567d0cbada08630ca3a',1796079807611,NULL);
INSERT INTO agent_snapshot_runs VALUES('80796b1336184b398c8067a52e10ec2b',NULL,NULL,'agent-v4','gpt-4o','p1','t1','66e0ea2ef84a63a21249ac1b',1796079807622,NULL);
INSERT INTO agent_snapshot_runs VALUES('cdef2d3794c844f1b3055334c5accc2b',NULL,NULL,'agent-v4','gpt-4o','p1','t1','f5184a127a10fd937a72d570',1796079807622,NULL);
INSERT INTO agent_snapshot_runs VALUES('410c7f514aa24bb09bb318e8844ef425',NULL,NULL,'agent-v4','gpt-4o','p1','t1','8b6735cd20652561dc5ac57d',1796079807624,NULL);
INSERT INTO agent_snapshot_runs VALUES('8eb3ff77079642bfa30c1cf194bc8082','410c7f514aa24bb09bb318e8844ef425',NULL,'sub-v4',NULL,NULL,NULL,'0afbc7c3c11c0f7d165fc380',1796079807629,NULL);
INSERT INTO agent_snapshot_runs VALUES('c2c87a67fde64bd89fe30c8f23589e35',NULL,NULL,'agent-v4','gpt-4o','p1','t1','4f5f3f08184d54813322b298',1796079807629,NULL);
INSERT INTO agent_snapshot_runs VALUES('ec9a707bf40e4bedbc8d2858233e6133',NULL,NULL,'agent-v4','gpt-4o','p1','t1','0ba5c73def5fb001e219de81',1796079807629,NULL);
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
INSERT INTO agent_tool_snapshots VALUES('7ec9e5e02ec946aa861b1273e5212634',1,NULL,'lookup','96652fdb56fd3ccb8113d51b','ok','e57cf707b9d2b4ee931ef00c','e57cf707b9d2b4ee931ef00c',NULL,NULL,1796079807621);
INSERT INTO agent_tool_snapshots VALUES('7ec9e5e02ec946aa861b1273e5212634',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807621);
INSERT INTO agent_tool_snapshots VALUES('80796b1336184b398c8067a52e10ec2b',1,NULL,'lookup','c84ea86b59b36df28456c1af','ok','54b6431defb2a911229781f9','54b6431defb2a911229781f9',NULL,NULL,1796079807622);
INSERT INTO agent_tool_snapshots VALUES('80796b1336184b398c8067a52e10ec2b',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807622);
INSERT INTO agent_tool_snapshots VALUES('cdef2d3794c844f1b3055334c5accc2b',1,NULL,'lookup','bb4fbbe1977c372310c6ee42','ok','28c06df80e325477660c158b','28c06df80e325477660c158b',NULL,NULL,1796079807622);
INSERT INTO agent_tool_snapshots VALUES('cdef2d3794c844f1b3055334c5accc2b',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807622);
INSERT INTO agent_tool_snapshots VALUES('cdef2d3794c844f1b3055334c5accc2b',4,NULL,'fail','2f4bfe3d2e95bc0529abca83','error',NULL,'f48888df3c12375571593ad6','ValueError',NULL,1796079807623);
INSERT INTO agent_tool_snapshots VALUES('410c7f514aa24bb09bb318e8844ef425',1,NULL,'lookup','0556f41d5225a20ef5cd935f','ok','3f91b955aa9a99adbbe61769','3f91b955aa9a99adbbe61769',NULL,NULL,1796079807628);
INSERT INTO agent_tool_snapshots VALUES('410c7f514aa24bb09bb318e8844ef425',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807628);
INSERT INTO agent_tool_snapshots VALUES('8eb3ff77079642bfa30c1cf194bc8082',1,NULL,'lookup','adb3c60b6132729e0b3cb6fa','ok','55fafca682b754c3373c88f6','55fafca682b754c3373c88f6',NULL,NULL,1796079807629);
INSERT INTO agent_tool_snapshots VALUES('c2c87a67fde64bd89fe30c8f23589e35',1,NULL,'lookup','042e9c312164c4ca2d430c93','ok','f6c474ca2d5a7615d394b137','f6c474ca2d5a7615d394b137',NULL,NULL,1796079807629);
INSERT INTO agent_tool_snapshots VALUES('c2c87a67fde64bd89fe30c8f23589e35',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807629);
INSERT INTO agent_tool_snapshots VALUES('ec9a707bf40e4bedbc8d2858233e6133',1,NULL,'lookup','553dc679b51bceed5bf3c593','ok','f2c33b3feafd1fe98c3dcd18','f2c33b3feafd1fe98c3dcd18',NULL,NULL,1796079807630);
INSERT INTO agent_tool_snapshots VALUES('ec9a707bf40e4bedbc8d2858233e6133',2,NULL,'lookup','e0cdf2f1808bcd1d1ad92b09','ok','3009a555b9e724fca54df16f','3009a555b9e724fca54df16f',NULL,NULL,1796079807630);
INSERT INTO agent_tool_snapshots VALUES('ec9a707bf40e4bedbc8d2858233e6133',4,NULL,'fail','6612a97f9e90199e223f238c','error',NULL,'9af957097d9f0a9a6860148d','ValueError',NULL,1796079807630);
CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
);
INSERT INTO agent_snapshot_blobs VALUES('b983e567d0cbada08630ca3a','json','',18,X'7b2269223a302c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('e57cf707b9d2b4ee931ef00c','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227130222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('3009a555b9e724fca54df16f','json','',38,X'7b2268697473223a5b312c322c335d2c2271223a2273616d65222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('66e0ea2ef84a63a21249ac1b','json','',18,X'7b2269223a312c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('54b6431defb2a911229781f9','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227131222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('f5184a127a10fd937a72d570','json','',18,X'7b2269223a322c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('28c06df80e325477660c158b','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227132222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('f48888df3c12375571593ad6','json','',87,X'7b2261726773223a5b226261642032225d2c226174747273223a7b7d2c226d657373616765223a226261642032222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('8b6735cd20652561dc5ac57d','json','',18,X'7b2269223a332c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('3f91b955aa9a99adbbe61769','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227133222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('0afbc7c3c11c0f7d165fc380','json','',7,X'226368696c6422',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('55fafca682b754c3373c88f6','json','',39,X'7b2268697473223a5b312c322c335d2c2271223a226368696c64222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('4f5f3f08184d54813322b298','json','',18,X'7b2269223a342c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('f6c474ca2d5a7615d394b137','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227134222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('0ba5c73def5fb001e219de81','json','',18,X'7b2269223a352c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('f2c33b3feafd1fe98c3dcd18','json','',36,X'7b2268697473223a5b312c322c335d2c2271223a227135222c22746167223a227634227d',1796079807687);
INSERT INTO agent_snapshot_blobs VALUES('9af957097d9f0a9a6860148d','json','',87,X'7b2261726773223a5b226261642035225d2c226174747273223a7b7d2c226d657373616765223a226261642035222c226d6f64756c65223a226275696c74696e73222c2274797065223a2256616c75654572726f72227d',1796079807687);
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
COMMIT;
