from gasometer.cli import main

raise SystemExit(main())
