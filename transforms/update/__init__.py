"""The update: diffs read into changes, merged into a base snapshot, written as hourly batches."""
