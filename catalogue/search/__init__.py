"""Search: the French analysis chain, the Whoosh index, the query, and the static shards.

``analysis`` is shared by every way in (Whoosh index, static shards, query), so
that the CLI, the API and the static page agree. Importing this package loads
nothing heavy; ``index`` and ``static`` register their build sinks when imported.
"""
