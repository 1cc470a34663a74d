from agent_otel.cli import main

raise SystemExit(main())
