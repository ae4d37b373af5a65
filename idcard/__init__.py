"""Resident ID cards: the numbers' checks, hashes and masks, card reads (stored hashed and
masked only), watch lists, communities' registers of residents, and the verdict each read
sends back to its reader. Ingest hands it the reads it decoded; it owns their tables."""
