"""Python-side calculators: OVMS's calculators the wheel lacks, and ones written in a notebook."""
