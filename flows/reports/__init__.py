"""What users read: ``seqcast status`` and the HTML report."""
