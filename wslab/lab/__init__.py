"""lab"""

from .checkers import check_frame_exercise as check_frame_exercise
from .checkers import check_header_size_exercise as check_header_size_exercise
from .inspect import describe_frame as describe_frame
from .inspect import frame_diagram as frame_diagram
from .inspect import frame_html as frame_html
from .inspect import show_frame as show_frame
from .inspect import split_frames as split_frames
