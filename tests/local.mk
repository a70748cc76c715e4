# (temporary)
