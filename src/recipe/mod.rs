//! The recipe: its model, how it is read from YAML or TOML, and its JSON Schema.
//!
//! `load` turns a file into a [`LoadedRecipe`] (typed values plus spans); `resolve`
//! turns that into a [`ResolvedRecipe`] with compiled globs, regexes and schema
//! validator. Nothing here touches the source tree or the network.

pub mod document;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod model;
pub mod resolve;

pub use error::{Code, RecipeError, RecipeErrors};
pub use load::{LoadedRecipe, load};
pub use model::Recipe;
pub use resolve::ResolvedRecipe;
