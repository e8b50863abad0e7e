"""wikisnap.pipelines"""
