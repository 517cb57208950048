"""Layer tars: safe fast unpacking, whiteout spellings, and deterministic diffs of overlay upperdirs."""
