"""wikisnap.schemas"""
