"""Use cases. Each public method is one unit of work; each mutation writes its audit entry
in the same transaction."""
