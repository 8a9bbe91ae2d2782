"""``seqcast demo``: the flows on bundled real data, then where to look at the results."""
