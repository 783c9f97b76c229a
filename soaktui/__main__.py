"""`python -m soaktui` is the `soaktui` command."""

from soaktui.cli import main

raise SystemExit(main())
