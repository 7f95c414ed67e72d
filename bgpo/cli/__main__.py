"""``python -m bgpo.cli ...`` (what ``accelerate launch -m bgpo.cli`` runs)."""

from . import main

raise SystemExit(main())
