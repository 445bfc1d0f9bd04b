// Package catalog owns the scripts folder: it writes scripts atomically,
// versions them by content hash, keeps an index fresh by rescanning the
// folder, and answers the catalog subjects on the bus. It publishes the
// scripts in a key-value bucket, and its Mirror copies that bucket into the
// folder of an executor node on another machine.
package catalog
