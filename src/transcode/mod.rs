//! Transcoding, pure: google.api.http path templates, the route table, request binding and
//! proto3 JSON. No I/O and no framework types; the REST ingress and the executor call in.

pub mod binding;
pub mod json;
pub mod json_shape;
pub mod json_wire;
pub mod openapi;
pub mod percent;
pub mod route_table;
pub mod routes;
pub mod rules_file;
pub mod template;
