"""Running graphs: timestamp policy, native graph guard, stream sessions, unary calls."""
