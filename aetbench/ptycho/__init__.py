"""Ptychographic AET: 4D-STEM data, single-slice and multislice ptychography, phase projections."""
