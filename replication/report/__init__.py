"""The report: REPORT.md, results/APPENDIX.md, the tables and figures, and the summary printed after a run."""
