# prod: the code is baked in; boot only starts it.
env            = "prod"
instance_type  = "t3.medium"
volume_size_gb = 16
