// An ordered map: the decoded form of a MessagePack/JSON map, and what payloads are built from.
// Order is kept so that a decoded frame re-encodes to the same bytes (the conformance corpus
// checks it); lookups scan linearly because EEP/1 maps hold a handful of keys, and a scan
// beats hashing at that size and allocates nothing.
using System;
using System.Collections;
using System.Collections.Generic;

namespace EntityBridge
{
    public sealed class EepMap : IEnumerable<KeyValuePair<object, object>>
    {
        object[] keys;
        object[] values;
        int count;

        public EepMap() : this(4) { }

        public EepMap(int capacity)
        {
            if (capacity < 1) capacity = 1;
            keys = new object[capacity];
            values = new object[capacity];
        }

        public int Count { get { return count; } }
        public object KeyAt(int i) { return keys[i]; }
        public object ValueAt(int i) { return values[i]; }

        /// <summary>Appends a pair without looking for an existing key (the decoder's path: a
        /// hostile map with 65535 keys must not cost 65535^2 comparisons). Later pairs win on lookup.</summary>
        public void Append(object key, object value)
        {
            if (count == keys.Length)
            {
                int size = keys.Length * 2;
                Array.Resize(ref keys, size);
                Array.Resize(ref values, size);
            }
            keys[count] = key;
            values[count] = value;
            count++;
        }

        /// <summary>Sets a string key, replacing its value in place (order kept) or appending.</summary>
        public EepMap Set(string key, object value)
        {
            int i = IndexOf(key);
            if (i >= 0) values[i] = value; else Append(key, value);
            return this;
        }

        public bool Remove(string key)
        {
            int i = IndexOf(key);
            if (i < 0) return false;
            Array.Copy(keys, i + 1, keys, i, count - i - 1);
            Array.Copy(values, i + 1, values, i, count - i - 1);
            count--;
            keys[count] = null;
            values[count] = null;
            return true;
        }

        public void Clear()
        {
            Array.Clear(keys, 0, count);
            Array.Clear(values, 0, count);
            count = 0;
        }

        int IndexOf(string key)
        {
            for (int i = count - 1; i >= 0; i--)
            {
                string k = keys[i] as string;
                if (k != null && string.Equals(k, key, StringComparison.Ordinal)) return i;
            }
            return -1;
        }

        public bool ContainsKey(string key) { return IndexOf(key) >= 0; }

        public bool TryGetValue(string key, out object value)
        {
            int i = IndexOf(key);
            value = i >= 0 ? values[i] : null;
            return i >= 0;
        }

        public object this[string key]
        {
            get { object v; TryGetValue(key, out v); return v; }
            set { Set(key, value); }
        }

        public string GetString(string key, string fallback = null)
        {
            return this[key] as string ?? fallback;
        }

        public long GetLong(string key, long fallback = 0)
        {
            object v = this[key];
            if (v is long) return (long)v;
            if (v is ulong) return unchecked((long)(ulong)v);
            if (v is double) return (long)(double)v;
            return fallback;
        }

        public double GetDouble(string key, double fallback = 0)
        {
            object v = this[key];
            if (v is double) return (double)v;
            if (v is long) return (long)v;
            if (v is ulong) return (ulong)v;
            return fallback;
        }

        public bool GetBool(string key, bool fallback = false)
        {
            object v = this[key];
            return v is bool ? (bool)v : fallback;
        }

        public EepMap GetMap(string key) { return this[key] as EepMap; }
        public List<object> GetList(string key) { return this[key] as List<object>; }
        public byte[] GetBytes(string key) { return this[key] as byte[]; }

        public IEnumerator<KeyValuePair<object, object>> GetEnumerator()
        {
            for (int i = 0; i < count; i++) yield return new KeyValuePair<object, object>(keys[i], values[i]);
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        public override string ToString() { return Json.Encode(this); }
    }
}
