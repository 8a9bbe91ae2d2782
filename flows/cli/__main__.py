"""``python -m flows.cli``: the same as the ``seqcast`` command."""

from flows.cli import main

main()
