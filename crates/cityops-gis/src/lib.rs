//! GIS of cityops: the unit grid and its hierarchy, point-to-cell lookup, WGS-84/GCJ-02 conversion.
//!
//! Every case in 数字城管 is filed against a unit cell (万米单元网格) of a district, found from the
//! position where it was reported. This crate holds that grid ([`grid`]: district → street → community →
//! cell, read from and written to GeoJSON, or generated from a boundary for a demo city), the lookup
//! from a position to its cell ([`index`]), and the datum conversion that a lookup needs because
//! devices report WGS-84 while Chinese boundary data is usually GCJ-02 ([`datum`]).

pub mod datum;
pub mod grid;
pub mod index;

pub use datum::{Datum, from_wgs84, to_wgs84};
pub use grid::{
    Cell, CellCode, CodeError, Community, CommunityCode, Grid, GridOptions, Street, StreetCode,
    generate_grid, read_boundary_geojson,
};
pub use index::{GridIndex, Location};
