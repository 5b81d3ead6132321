"""Spatial data: mono corpora (``sfx``, ``importer``, ``corpus``), rooms and FOA responses (``rooms``), spatial
captions (``captions``), spatialisation (``spatialize``), manifests (``manifest``) and the torch dataset (``dataset``).

Sub-modules are imported where they are used, so ``import soundstage.data.manifest`` stays light.
"""
