//! GIS of cityops.
