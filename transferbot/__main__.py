from transferbot.cli.main import main

raise SystemExit(main())
