from transferbot.cli import main

raise SystemExit(main())
