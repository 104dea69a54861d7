// The translation unit that builds the shared torch precompiled header.
