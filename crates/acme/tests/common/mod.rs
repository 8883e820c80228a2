pub mod fake_ca;
