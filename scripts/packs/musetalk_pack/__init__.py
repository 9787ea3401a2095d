"""MuseTalk 1.5 as a lipcast generator pack: see scripts/packs/musetalk.py."""
