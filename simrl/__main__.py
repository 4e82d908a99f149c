"""``python -m simrl`` runs the CLI."""

from simrl.cli import main

main()
