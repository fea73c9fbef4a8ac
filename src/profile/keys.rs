//! A device's keys as LXD lists them to the guest: each field that is set,
//! by its TOML name, with its value as a string (`"true"`, `"1500"`,
//! `"bridged"`).
//!
//! Written straight from the device's `Serialize` impl, so a field added to
//! a device type shows up without anything to keep in step here. A value
//! this can't spell (a float, a list, a table) makes [`fields`] say
//! [`Unsupported`]; the caller then goes the general way through JSON.
//! (That way was most of the cost of loading a 10,000-device profile: a JSON
//! object per device, its keys hashed twice.)

use crate::plan::DeviceKeys;
use serde::Serialize;
use serde::ser::{self, Impossible};

/// The value has a part that isn't a plain scalar.
#[derive(Debug)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a struct of scalars")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// The fields of `value` (a struct, or an internally tagged enum of
/// structs), in their order, except `skip`, each as a string; JSON's
/// spelling of each scalar (`null` for a unit).
pub fn fields<T: Serialize + ?Sized>(
    value: &T,
    skip: &str,
    out: &mut DeviceKeys,
) -> Result<(), Unsupported> {
    value.serialize(Fields { out, skip })
}

struct Fields<'a> {
    out: &'a mut DeviceKeys,
    skip: &'a str,
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let text = value.serialize(Scalar)?;
        if key != self.skip {
            self.out.insert(key.to_string(), text);
        }
        Ok(())
    }

    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

/// Refuses every shape but the one it is for.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ret, Unsupported> {
            Err(Unsupported)
        })*
    };
}

/// `Some(x)` and newtypes are what they wrap; an enum's newtype variant is
/// refused (JSON makes a table of it).
macro_rules! wrappers {
    ($ok:ty) => {
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<$ok, Unsupported> {
            value.serialize(self)
        }

        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<$ok, Unsupported> {
            value.serialize(self)
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, Unsupported> {
            Err(Unsupported)
        }
    };
}

impl<'a> ser::Serializer for Fields<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'a>, Unsupported> {
        Ok(self)
    }

    wrappers!(());

    refuse! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

/// Spells a scalar as `Display` does (as JSON does for these types).
macro_rules! spell {
    ($($name:ident($ty:ty);)*) => {
        $(fn $name(self, v: $ty) -> Result<String, Unsupported> {
            Ok(v.to_string())
        })*
    };
}

/// One field's value as a string.
struct Scalar;

impl ser::Serializer for Scalar {
    type Ok = String;
    type Error = Unsupported;
    type SerializeSeq = Impossible<String, Unsupported>;
    type SerializeTuple = Impossible<String, Unsupported>;
    type SerializeTupleStruct = Impossible<String, Unsupported>;
    type SerializeTupleVariant = Impossible<String, Unsupported>;
    type SerializeMap = Impossible<String, Unsupported>;
    type SerializeStruct = Impossible<String, Unsupported>;
    type SerializeStructVariant = Impossible<String, Unsupported>;

    spell! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_char(char);
        serialize_str(&str);
    }
    fn serialize_none(self) -> Result<String, Unsupported> {
        Ok("null".into())
    }
    fn serialize_unit(self) -> Result<String, Unsupported> {
        Ok("null".into())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Unsupported> {
        Ok("null".into())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Unsupported> {
        Ok(variant.to_owned())
    }
    wrappers!(String);

    refuse! {
        // JSON spells floats its own way (`1e21`, `1.0`): left to it.
        serialize_f32(f32) -> String;
        serialize_f64(f64) -> String;
        serialize_bytes(&[u8]) -> String;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::raw::RawDevice;
    use indexmap::IndexMap;

    /// What the general way through JSON makes of a device.
    fn via_json(dev: &RawDevice) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(dev) {
            for (k, v) in map.into_iter().filter(|(k, _)| k != "type") {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, s);
            }
        }
        out
    }

    #[test]
    fn every_kind_of_device_gives_what_json_gives() {
        let text = r#"
            [a]
            type = "unix-char"
            source = "/dev/fuse"
            major = 10
            minor = 229
            mode = "0666"
            uid = 0
            gid = 5
            required = false
            method = "bind"
            [b]
            type = "disk"
            source = "/srv"
            path = "/srv"
            readonly = true
            recursive = false
            only_if_mounted = true
            [c]
            type = "nic"
            nictype = "bridged"
            parent = "br0"
            mtu = 1500
            "ipv4.address" = "10.0.3.2/24"
            "ipv4.gateway" = "10.0.3.1"
            host_name = "veth-c"
            hwaddr = "00:16:3e:00:00:01"
            [d]
            type = "tmpfs"
            path = "/run/x"
            size = 65536
            [e]
            type = "tmpfs"
            path = "/run/y"
            size = "64MiB"
            mode = "1777"
            [f]
            type = "symlink"
            path = "/dev/fd"
            target = "/proc/self/fd"
            [g]
            type = "mqueue"
            [h]
            type = "none"
            [i]
            type = "unix-block"
            path = "/dev/loop0"
            major = 7
            minor = 0
        "#;
        let devices: IndexMap<String, RawDevice> = toml::from_str(text).unwrap();
        assert_eq!(devices.len(), 9);
        for (name, dev) in &devices {
            let mut out = DeviceKeys::default();
            fields(dev, "type", &mut out).unwrap();
            let want = via_json(dev);
            assert_eq!(
                out.iter().collect::<Vec<_>>(),
                want.iter().collect::<Vec<_>>(),
                "device {name}"
            );
        }
        let mut c = DeviceKeys::default();
        fields(&devices["c"], "type", &mut c).unwrap();
        assert_eq!(c["mtu"], "1500");
        assert_eq!(c["nictype"], "bridged");
        assert_eq!(c["ipv4.address"], "10.0.3.2/24");
        assert!(!c.contains_key("type"));
        assert_eq!(c["ipv4.gateway"], "10.0.3.1");
        assert_eq!(c["host_name"], "veth-c");
        let mut a = DeviceKeys::default();
        fields(&devices["a"], "type", &mut a).unwrap();
        assert_eq!(a["method"], "bind");
        assert_eq!(a["gid"], "5");
        assert_eq!(a["required"], "false");
    }

    #[test]
    fn what_it_cannot_spell_is_refused() {
        #[derive(Serialize)]
        struct F {
            x: f64,
        }
        #[derive(Serialize)]
        struct L {
            x: Vec<String>,
        }
        let mut out = DeviceKeys::default();
        assert!(fields(&F { x: 1.0 }, "", &mut out).is_err());
        assert!(fields(&L { x: vec![] }, "", &mut out).is_err());
        assert!(fields(&"not a struct", "", &mut out).is_err());
    }
}
