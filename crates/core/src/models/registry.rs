//! The `registry!` macro: from one line per model (its variant, module and
//! parameters type), the model's module, [`super::ModelSpec`] with a
//! variant per model, [`super::MODEL_NAMES`] and the one dispatch to each
//! model's [`super::Model`] implementation. The list itself is in
//! `models/mod.rs`; parsing, dispatch, the stored format and the docs' list
//! of names all follow from it.

/// See the module documentation.
macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident($module:ident :: $params:ident) ),* $(,)?) => {
        $( pub mod $module; )*
        $( use $module::$params; )*
        /// A validated model specification, ready to fit: which model, with
        /// its checked parameters. Serialised as its scikit-learn-style JSON
        /// form (`{"model": NAME, "params": {...}}`), and validated again
        /// when deserialised.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
        pub enum ModelSpec {
            $( $(#[$doc])* $variant($params), )*
        }

        /// The model names this core implements, as scikit-learn spells them.
        pub const MODEL_NAMES: &[&str] = &[ $( <$params as Model>::NAME ),* ];

        impl ModelSpec {
            /// The model, for everything that depends on which one it is.
            pub fn model(&self) -> &dyn model::DynModel {
                match self {
                    $( Self::$variant(params) => params, )*
                }
            }

            /// The model named `name` with `params` read and checked;
            /// `None` for a name this core does not implement.
            pub(crate) fn parse_named(
                name: &str,
                params: &serde_json::Map<String, serde_json::Value>,
            ) -> Option<Result<Self, crate::params::ConfigError>> {
                $(
                    if name == <$params as Model>::NAME {
                        return Some(model::parse::<$params>(params).map(Self::$variant));
                    }
                )*
                None
            }
        }
    };
}
