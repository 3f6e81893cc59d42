"""Pure builders: one per owned kind, each returning the desired object as a plain dict.

No API calls here (cloudnative-pg's pkg/specs layout); the handlers decide when to write.
"""
