"""The core both sides import (numpy + OpenCV only): alignment, image reading, region layouts, vectors and the
manifest contract. Importing it loads no TensorFlow, Keras, yaml, tqdm or matplotlib."""
