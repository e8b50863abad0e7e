"""wikisnap.transforms"""
