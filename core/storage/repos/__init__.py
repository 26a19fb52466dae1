"""The repositories of the unit of work, one module per part of the store."""
