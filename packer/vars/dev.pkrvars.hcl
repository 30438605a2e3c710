# dev: small instance; the image starts the app and pulls its revision on boot.
env            = "dev"
instance_type  = "t3.small"
volume_size_gb = 12
