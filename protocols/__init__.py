"""Pure clinical logic: protocols, parameter validation, screening, movement programmes."""
