"""Printings: the same picture found again in other books (a reprint, a re-cut, a mirror
copy, a crop, a hand-coloured copy), by local features verified geometrically."""
