"""repeg: phased smart-limit execution of US equity trades."""
