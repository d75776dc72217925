"""Search by color over a tenant's processed images (issue 14): the index seam and its use."""
