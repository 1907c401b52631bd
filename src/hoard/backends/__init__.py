"""Storage backends behind one small contract (see ``base.Backend``)."""
