//! Typed columns: how one field of a row type becomes a Parquet column and back. Numbers keep
//! their width, optional fields are nullable columns (never sentinel values), enums are
//! stored by name and parsed back with an error that names the table, the column, the row
//! and the value.

use polars::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A field type that has a column representation.
pub trait Cell: Sized {
    fn to_column(name: &str, values: Vec<Self>) -> Column;
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>>;
}

fn get<'a>(table: &str, name: &str, df: &'a DataFrame) -> Result<&'a Column> {
    df.column(name).map_err(|_| Error::column(table, name, "no such column"))
}

fn cast(table: &str, name: &str, df: &DataFrame, to: &DataType) -> Result<Column> {
    get(table, name, df)?.cast(to).map_err(|e| Error::column(table, name, e.to_string()))
}

fn required<T>(table: &str, name: &str, values: Vec<Option<T>>) -> Result<Vec<T>> {
    values
        .into_iter()
        .enumerate()
        .map(|(row, v)| v.ok_or_else(|| Error::column(table, name, format!("row {row} is null"))))
        .collect()
}

fn ints(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Option<i64>>> {
    let c = cast(table, name, df, &DataType::Int64)?;
    Ok(c.i64().map_err(|e| Error::column(table, name, e.to_string()))?.iter().collect())
}

macro_rules! integer_cell {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn to_column(name: &str, values: Vec<Self>) -> Column {
                Series::new(name.into(), values).into_column()
            }
            fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
                required(table, name, Option::<$t>::from_column(table, name, df)?)
            }
        }
        impl Cell for Option<$t> {
            fn to_column(name: &str, values: Vec<Self>) -> Column {
                Series::new(name.into(), values).into_column()
            }
            fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
                ints(table, name, df)?
                    .into_iter()
                    .enumerate()
                    .map(|(row, v)| {
                        v.map(|x| {
                            <$t>::try_from(x).map_err(|_| {
                                Error::column(table, name, format!("row {row}: {x} does not fit {}", stringify!($t)))
                            })
                        })
                        .transpose()
                    })
                    .collect()
            }
        }
    )*};
}
integer_cell!(u8, u16, u32, i32, i64);

impl Cell for Option<f64> {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        let c = cast(table, name, df, &DataType::Float64)?;
        Ok(c.f64().map_err(|e| Error::column(table, name, e.to_string()))?.iter().collect())
    }
}

impl Cell for f64 {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        required(table, name, Option::<f64>::from_column(table, name, df)?)
    }
}

impl Cell for Option<bool> {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        let c = get(table, name, df)?;
        Ok(c.bool().map_err(|e| Error::column(table, name, e.to_string()))?.iter().collect())
    }
}

impl Cell for bool {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        required(table, name, Option::<bool>::from_column(table, name, df)?)
    }
}

impl Cell for Option<String> {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        let c = get(table, name, df)?;
        Ok(c.str()
            .map_err(|e| Error::column(table, name, e.to_string()))?
            .iter()
            .map(|v| v.map(String::from))
            .collect())
    }
}

impl Cell for String {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        Series::new(name.into(), values).into_column()
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        required(table, name, Option::<String>::from_column(table, name, df)?)
    }
}

/// Lists of sentences (a run's reasons and notes): one string per element, joined by
/// [`LIST_SEPARATOR`], which no sentence coloc writes contains.
impl Cell for Vec<String> {
    fn to_column(name: &str, values: Vec<Self>) -> Column {
        String::to_column(name, values.into_iter().map(|v| v.join(LIST_SEPARATOR)).collect())
    }
    fn from_column(table: &str, name: &str, df: &DataFrame) -> Result<Vec<Self>> {
        Ok(String::from_column(table, name, df)?
            .into_iter()
            .map(|s| if s.is_empty() { Vec::new() } else { s.split(LIST_SEPARATOR).map(String::from).collect() })
            .collect())
    }
}

pub const LIST_SEPARATOR: &str = "\n";

/// An enum stored by its serde name (`time_sliced`, `VALID`).
pub trait NamedEnum: Serialize + DeserializeOwned + Copy {
    fn enum_name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            other => panic!("a named enum serialises to a string, not {other:?}"),
        }
    }
    fn from_enum_name(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }
}

/// Implements [`Cell`] for named enums, required and optional.
#[macro_export]
macro_rules! named_enum_cell {
    ($($t:ty),*) => {$(
        impl $crate::cell::NamedEnum for $t {}
        impl $crate::cell::Cell for Option<$t> {
            fn to_column(name: &str, values: Vec<Self>) -> polars::prelude::Column {
                use $crate::cell::NamedEnum;
                <Option<String> as $crate::cell::Cell>::to_column(name, values.into_iter().map(|v| v.map(|e| e.enum_name())).collect())
            }
            fn from_column(table: &str, name: &str, df: &polars::prelude::DataFrame) -> $crate::error::Result<Vec<Self>> {
                use $crate::cell::NamedEnum;
                <Option<String> as $crate::cell::Cell>::from_column(table, name, df)?
                    .into_iter()
                    .enumerate()
                    .map(|(row, v)| match v {
                        None => Ok(None),
                        Some(s) => <$t>::from_enum_name(&s).map(Some).ok_or_else(|| {
                            $crate::error::Error::column(table, name, format!("row {row}: `{s}` is not a {}", stringify!($t)))
                        }),
                    })
                    .collect()
            }
        }
        impl $crate::cell::Cell for $t {
            fn to_column(name: &str, values: Vec<Self>) -> polars::prelude::Column {
                <Option<$t> as $crate::cell::Cell>::to_column(name, values.into_iter().map(Some).collect())
            }
            fn from_column(table: &str, name: &str, df: &polars::prelude::DataFrame) -> $crate::error::Result<Vec<Self>> {
                <Option<$t> as $crate::cell::Cell>::from_column(table, name, df)?
                    .into_iter()
                    .enumerate()
                    .map(|(row, v)| v.ok_or_else(|| $crate::error::Error::column(table, name, format!("row {row} is null"))))
                    .collect()
            }
        }
    )*};
}

/// One Parquet table: its file name and the conversion of its rows.
pub trait Table: Sized {
    /// File stem: `requests` is `requests.parquet`.
    const NAME: &'static str;
    fn to_frame(rows: &[Self]) -> Result<DataFrame>;
    fn from_frame(df: &DataFrame) -> Result<Vec<Self>>;
}

/// A frame from columns of equal length.
pub fn frame(table: &str, columns: Vec<Column>) -> Result<DataFrame> {
    let height = columns.first().map_or(0, |c| c.len());
    DataFrame::new(height, columns).map_err(|e| Error::column(table, "*", e.to_string()))
}

/// Declares a row type and its [`Table`] implementation: one column per field, in order,
/// named as the field.
#[macro_export]
macro_rules! table {
    ($(#[$m:meta])* pub struct $name:ident in $file:literal { $( $(#[$fm:meta])* pub $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name { $( $(#[$fm])* pub $field: $ty ),* }

        impl $crate::cell::Table for $name {
            const NAME: &'static str = $file;
            fn to_frame(rows: &[Self]) -> $crate::error::Result<polars::prelude::DataFrame> {
                let columns = vec![$(
                    <$ty as $crate::cell::Cell>::to_column(stringify!($field), rows.iter().map(|r| r.$field.clone()).collect())
                ),*];
                $crate::cell::frame(Self::NAME, columns)
            }
            fn from_frame(df: &polars::prelude::DataFrame) -> $crate::error::Result<Vec<Self>> {
                $( let mut $field = <$ty as $crate::cell::Cell>::from_column(Self::NAME, stringify!($field), df)?.into_iter(); )*
                let mut rows = Vec::with_capacity(df.height());
                for _ in 0..df.height() {
                    rows.push($name { $( $field: $field.next().expect("every column has one value per row"), )* });
                }
                Ok(rows)
            }
        }
    };
}
