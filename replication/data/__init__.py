"""Files and datasets: atomic, checksummed files and the datasets (images as uint8, toy mixtures)."""
