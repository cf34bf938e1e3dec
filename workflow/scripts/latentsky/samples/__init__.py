"""Sample stores: from instrument records to the stores of samples that models train on
(projected images of a date and their stack; photometer windows)."""
