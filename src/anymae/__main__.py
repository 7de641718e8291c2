from anymae.cli import main

raise SystemExit(main())
