"""``python -m llmecon`` runs the command line."""

from llmecon.cli import main

main()
